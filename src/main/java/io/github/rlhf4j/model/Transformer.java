package io.github.rlhf4j.model;

import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Tensor;

/**
 * A family's base model, transformers' {@code AutoModel} (GPT2Model, OPTModel, GPTNeoModel, LlamaModel,
 * Qwen2Model): token ids in, final hidden states out, with parameters named as in that class. {@link CausalLM} puts
 * it under the family's base prefix with an LM head; {@link RewardModel} under DeepSpeed-Chat's
 * {@code rwtranrsformer} with a value head. The same instance serves training (no cache) and generation (a
 * {@link KvCache}), so generation reads the weights being trained: no inference copy.
 */
public abstract class Transformer extends Module {
    private long dropoutSeed;
    private boolean gradientCheckpointing;

    public abstract ModelConfig config();

    /**
     * The final hidden states [B, T, config().outputSize()] for I32 {@code ids} [B, T].
     *
     * @param attentionMask I32 [B, T], 0 = padding, or null (no padding). With a cache, the mask of the new tokens.
     * @param positions I32 [B, T] position ids, or null for the family's default: what transformers' forward computes
     *     without position_ids (0.. T-1 after the cached length; OPT derives them from the attention mask).
     *     Generation with left padding passes {@code cumsum(mask) - 1} (1 at pads), as transformers' generate does.
     * @param cache null for training; else the keys and values of earlier positions, extended by this call.
     */
    public abstract Tensor forward(Tensor ids, Tensor attentionMask, Tensor positions, KvCache cache);

    /** The token embedding [vocab, outputSize], which a tied LM head multiplies by. */
    public abstract Tensor tokenEmbedding();

    /** Seed of the dropout masks of the next forward (each dropout site advances it). */
    public final void setDropoutSeed(long seed) {
        this.dropoutSeed = seed;
    }

    /** The seed the next dropout site uses (a checkpoint saves it, so a resumed run draws the same masks). */
    public final long dropoutSeed() {
        return dropoutSeed;
    }

    /**
     * Gradient checkpointing (DS-Chat's {@code --gradient_checkpointing}, transformers'
     * {@code gradient_checkpointing_enable()}): each layer's activations are dropped after the forward and
     * recomputed during the backward, so training keeps one layer's activations instead of all of them, for about
     * one more forward pass of compute. Gradients are the same as without it (bitwise on the CPU backend).
     */
    public final void setGradientCheckpointing(boolean on) {
        this.gradientCheckpointing = on;
    }

    public final boolean isGradientCheckpointing() {
        return gradientCheckpointing;
    }

    /**
     * Runs layer {@code index} on the hidden states {@code x}: directly, or checkpointed when gradient checkpointing
     * is on and the forward records gradients without a KV cache (training; generation and no-grad scoring never
     * pay for it). The recomputation replays the layer's dropout masks by restarting from the same dropout seed.
     */
    protected final Tensor layer(int index, Tensor x, KvCache cache, java.util.function.UnaryOperator<Tensor> f) {
        if (layerHook != null) return layerHook.layer(index, x, cache != null, in -> runLayer(index, in, cache, f));
        return runLayer(index, x, cache, f);
    }

    /**
     * Wraps each layer's run: ZeRO stages 2 and 3 ({@code io.github.rlhf4j.dist.ShardedStore}) gather a layer's
     * parameters before it and free them after, and reduce-scatter its gradients when its backward is done.
     */
    public interface LayerHook {
        /** Runs layer {@code index} on {@code x} through {@code run}; {@code cached}: a KV-cache forward. */
        Tensor layer(int index, Tensor x, boolean cached, java.util.function.UnaryOperator<Tensor> run);
    }

    private LayerHook layerHook;

    /** Sets (or, with null, removes) the hook every layer runs through. */
    public final void setLayerHook(LayerHook hook) {
        this.layerHook = hook;
    }

    public final LayerHook layerHook() {
        return layerHook;
    }

    private Tensor runLayer(int index, Tensor x, KvCache cache, java.util.function.UnaryOperator<Tensor> f) {
        if (!gradientCheckpointing || cache != null || !io.github.rlhf4j.tensor.Autograd.isEnabled())
            return f.apply(x);
        long seed = dropoutSeed;
        boolean[] first = {true};
        return io.github.rlhf4j.tensor.Autograd.checkpoint("layer " + index, in -> {
            if (first[0]) { // the forward: the seed advances as it would without checkpointing
                first[0] = false;
                return f.apply(in[0]);
            }
            long after = dropoutSeed;
            dropoutSeed = seed;
            try {
                return f.apply(in[0]);
            } finally {
                dropoutSeed = after;
            }
        }, x);
    }

    /** Dropout with probability p in training mode, identity otherwise. */
    protected final Tensor dropout(Tensor x, double p) {
        if (!isTraining() || p == 0) return x;
        return Functional.dropout(x, p, dropoutSeed++, 0);
    }

    /**
     * Attention of q [B, T, Hq, D] over k, v [B, T, Hkv, D]: causal, with the padding {@code mask}; through the
     * cache when there is one (which then holds the mask).
     */
    protected static Tensor attention(Tensor q, Tensor k, Tensor v, Tensor mask, double scale, int window,
                                      KvCache cache, int layer) {
        if (cache != null) return cache.attend(layer, q, k, v, scale, window);
        return Functional.attention(q, k, v, mask, scale, true, window);
    }

    /**
     * Position ids from an attention mask [rows, cols] (row-major): {@code cumsum(mask) - 1}, and 1 at padding, as
     * transformers' generate computes them. Left-padded rows then put their first real token at position 0.
     */
    public static int[] positionsFromMask(int[] mask, int rows, int cols) {
        int[] pos = new int[rows * cols];
        for (int i = 0; i < rows; i++) {
            int seen = 0;
            for (int j = 0; j < cols; j++) {
                int k = i * cols + j;
                if (mask[k] != 0) pos[k] = seen++;
                else pos[k] = 1;
            }
        }
        return pos;
    }

    /** Default positions: arange(T) after the cached length, for every row. */
    protected static Tensor defaultPositions(int b, int t, KvCache cache) {
        int start = cache == null ? 0 : cache.length();
        int[] pos = new int[b * t];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < t; j++) pos[i * t + j] = start + j;
        return Tensor.ofInts(pos, b, t);
    }

    /** Checks ids [B, T] (and the mask, positions, cache) before a forward; names the model's limits. */
    protected final void checkInputs(Tensor ids, Tensor attentionMask, Tensor positions, KvCache cache) {
        ModelConfig c = config();
        if (ids.dim() != 2)
            throw new IllegalArgumentException(c.modelType() + ": ids must be [batch, time], got " + ids.describe());
        int b = ids.size(0), t = ids.size(1), past = cache == null ? 0 : cache.length();
        if (past + t > c.maxPositions())
            throw new IllegalArgumentException(c.modelType() + ": sequence length " + (past + t)
                    + " exceeds the model's context of " + c.maxPositions() + " positions");
        if (attentionMask != null && (attentionMask.dim() != 2 || attentionMask.size(0) != b
                || attentionMask.size(1) != t))
            throw new IllegalArgumentException(c.modelType() + ": attention mask " + attentionMask.describe()
                    + " must be [" + b + ", " + t + "]");
        if (positions != null && (positions.dim() != 2 || positions.size(0) != b || positions.size(1) != t))
            throw new IllegalArgumentException(c.modelType() + ": positions " + positions.describe() + " must be ["
                    + b + ", " + t + "]");
        if (cache != null && cache.batch() != b)
            throw new IllegalArgumentException(c.modelType() + ": batch " + b + " but the KV cache holds "
                    + cache.batch() + " sequences");
    }
}
