package io.github.rlhf4j.generate;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.KvCache;
import io.github.rlhf4j.model.ModelConfig;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.Arrays;

/**
 * Batched generation with a KV cache, as transformers' {@code generate}: prompts left-padded to one length, one
 * prefill pass over them, then one token per step for every unfinished sequence. Position ids are
 * {@code cumsum(mask) - 1} (1 at pads) as generate passes them, so a padded prompt gives the tokens it would give
 * alone. A sequence ends at an EOS token (unless ignored) or after max_new_tokens; finished sequences are dropped
 * from the batch and the cache, so they stop costing work. A {@link TokenListener} sees every token as it comes and
 * can end its sequence early.
 *
 * <p>The model's own parameters are read: generation and training share the same weights (DeepSpeed's Hybrid
 * Engine gets this with a copy; here there is nothing to copy). Runs under {@link Autograd#noGrad()}.
 */
public final class Generator {
    /**
     * Called with each new token of sequence {@code row} (its index in the prompts), as it is picked; returns false
     * to end that sequence there (a stop string seen, a client gone), true to go on.
     */
    @FunctionalInterface
    public interface TokenListener {
        boolean onToken(int row, int token);
    }

    /** Why a sequence stopped: an EOS token, max_new_tokens, or its listener said stop. */
    public enum Finish { EOS, LENGTH, STOPPED }

    /**
     * The outcome: per prompt the new tokens (EOS included when it ended there) and why it stopped; and transformers'
     * {@code sequences}: [B, P + max new] rows of the left-padded prompt then the answer, padded with the pad id.
     */
    public record Result(int[][] tokens, Finish[] finish, int[][] sequences, int promptLength) {}

    private final CausalLM model;

    public Generator(CausalLM model) {
        this.model = model;
    }

    /** Generates for one prompt. */
    public Result generate(int[] prompt, GenerationConfig config, TokenListener listener) {
        return generate(new int[][] {prompt}, config, listener);
    }

    public Result generate(int[][] prompts, GenerationConfig config, TokenListener listener) {
        int b = prompts.length;
        if (b == 0) throw new IllegalArgumentException("generate: no prompts");
        int p = 0;
        for (int i = 0; i < b; i++) {
            if (prompts[i].length == 0) throw new IllegalArgumentException("generate: prompt " + i + " is empty");
            p = Math.max(p, prompts[i].length);
        }
        ModelConfig c = model.config();
        int total = p + config.maxNewTokens();
        if (total > c.maxPositions())
            throw new IllegalArgumentException("generate: prompt of " + p + " tokens + max_new_tokens "
                    + config.maxNewTokens() + " = " + total + " exceeds the model's context of " + c.maxPositions()
                    + " positions");
        for (int[] row : prompts)
            for (int t : row)
                if (t < 0 || t >= c.vocabSize())
                    throw new IllegalArgumentException("generate: token id " + t + " outside the vocabulary of "
                            + c.vocabSize());
        int pad = config.padTokenId();
        int[] ids = new int[b * p], mask = new int[b * p], pos = new int[b * p];
        int[][] seen = new int[b][total];
        int[] seenCount = new int[b], nextPos = new int[b];
        for (int i = 0; i < b; i++) {
            int off = p - prompts[i].length;
            for (int j = 0; j < p; j++) {
                boolean real = j >= off;
                ids[i * p + j] = real ? prompts[i][j - off] : pad;
                mask[i * p + j] = real ? 1 : 0;
                pos[i * p + j] = real ? j - off : 1;
            }
            System.arraycopy(prompts[i], 0, seen[i], 0, prompts[i].length);
            seenCount[i] = prompts[i].length;
            nextPos[i] = prompts[i].length;
        }
        int[][] out = new int[b][config.maxNewTokens()];
        int[] outCount = new int[b];
        Finish[] finish = new Finish[b];
        Sampler sampler = new Sampler(config);
        int[] active = new int[b]; // active[k] = original row of the k-th sequence in the batch
        for (int i = 0; i < b; i++) active[i] = i;
        int n = b;
        Tensor param = model.base().tokenEmbedding();
        try (Autograd.NoGrad ignored = Autograd.noGrad();
             KvCache cache = KvCache.of(c, param.device(), param.dtype(), b, total)) {
            int[] stepIds = ids, stepMask = mask, stepPos = pos;
            int t = p;
            for (int step = 0; step < config.maxNewTokens(); step++) {
                float[] logits;
                try (Scope s = Scope.open(param.device())) {
                    Tensor h = model.base().forward(Tensor.ofInts(stepIds, n, t), Tensor.ofInts(stepMask, n, t),
                            Tensor.ofInts(stepPos, n, t), cache);
                    logits = model.logits(h.slice(1, t - 1, t)).to(io.github.rlhf4j.runtime.DType.F32).toFloatArray();
                }
                int v = logits.length / n;
                int[] keep = new int[n];
                int kept = 0;
                int[] next = new int[n];
                for (int k = 0; k < n; k++) {
                    int row = active[k];
                    float[] rowLogits = Arrays.copyOfRange(logits, k * v, (k + 1) * v);
                    int token = sampler.next(rowLogits, seen[row], seenCount[row]);
                    out[row][outCount[row]++] = token;
                    seen[row][seenCount[row]++] = token;
                    boolean go = listener == null || listener.onToken(row, token);
                    if (config.isEos(token)) finish[row] = Finish.EOS;
                    else if (!go) finish[row] = Finish.STOPPED;
                    else if (outCount[row] == config.maxNewTokens()) finish[row] = Finish.LENGTH;
                    else {
                        keep[kept] = k;
                        next[kept++] = token;
                    }
                }
                if (kept == 0) break;
                if (kept < n) {
                    cache.keepRows(Arrays.copyOf(keep, kept));
                    int[] a = new int[kept];
                    for (int k = 0; k < kept; k++) a[k] = active[keep[k]];
                    active = a;
                    n = kept;
                }
                stepIds = Arrays.copyOf(next, n);
                stepMask = new int[n];
                stepPos = new int[n];
                for (int k = 0; k < n; k++) {
                    stepMask[k] = 1;
                    stepPos[k] = nextPos[active[k]]++;
                }
                t = 1;
            }
        }
        int[][] tokens = new int[b][];
        int[][] sequences = new int[b][];
        int longest = 0;
        for (int i = 0; i < b; i++) longest = Math.max(longest, outCount[i]);
        for (int i = 0; i < b; i++) {
            tokens[i] = Arrays.copyOf(out[i], outCount[i]);
            sequences[i] = new int[p + longest];
            Arrays.fill(sequences[i], pad);
            System.arraycopy(ids, i * p, sequences[i], 0, p);
            System.arraycopy(tokens[i], 0, sequences[i], p, tokens[i].length);
            if (finish[i] == null) finish[i] = Finish.LENGTH;
        }
        return new Result(tokens, finish, sequences, p);
    }
}
