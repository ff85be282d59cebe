package io.github.rlhf4j.model;

import static io.github.rlhf4j.tensor.Functional.relu;

import io.github.rlhf4j.nn.Embedding;
import io.github.rlhf4j.nn.LayerNorm;
import io.github.rlhf4j.nn.Linear;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * OPT as transformers' OPTModel computes it, with its parameter names ({@code decoder.layers.0.self_attn.q_proj}):
 * learned positions offset by 2, separate q/k/v projections, relu MLP, pre-LN blocks (125m and 1.3b up) or
 * opt-350m's post-LN blocks, and opt-350m's projections between the word_embed_proj_dim-wide embeddings and the
 * hidden_size-wide residual stream. {@link CausalLM} adds the LM head tied to embed_tokens.
 *
 * <pre>
 * x = project_in(embed_tokens[ids]) + embed_positions[pos + 2]
 * for each layer (pre-LN):  x = x + out_proj(attn(self_attn_layer_norm(x)))
 *                           x = x + fc2(relu(fc1(final_layer_norm(x))))
 *          (post-LN):       x = self_attn_layer_norm(x + out_proj(attn(x)))
 *                           x = final_layer_norm(x + fc2(relu(fc1(x))))
 * hidden = project_out(decoder.final_layer_norm(x))      (the norm only pre-LN, the projections only opt-350m)
 * </pre>
 *
 * Without explicit positions, OPT numbers the real tokens: {@code cumsum(mask) * mask - 1}, so a left-padded row
 * starts at position 0 at its first real token (pads get -1, row 1 of embed_positions), as transformers does.
 */
public final class OptModel extends Transformer {
    /** transformers' OPTLearnedPositionalEmbedding shifts every position by 2 (a fairseq padding_idx leftover). */
    public static final int POSITION_OFFSET = 2;

    private final OptConfig c;
    final Decoder decoder;

    public OptModel(OptConfig c) {
        this.c = c;
        decoder = module("decoder", new Decoder(c));
    }

    @Override
    public OptConfig config() {
        return c;
    }

    @Override
    public Tensor tokenEmbedding() {
        return decoder.embedTokens.weight.value();
    }

    @Override
    public Tensor forward(Tensor ids, Tensor mask, Tensor positions, KvCache cache) {
        checkInputs(ids, mask, positions, cache);
        int b = ids.size(0), t = ids.size(1);
        int[] pos = positions != null ? positions.toIntArray() : positionsFromMask(b, t, mask, cache);
        for (int i = 0; i < pos.length; i++) pos[i] += POSITION_OFFSET;
        Tensor x = decoder.embedTokens.forward(ids);
        if (decoder.projectIn != null) x = decoder.projectIn.forward(x);
        x = x.add(decoder.embedPositions.forward(Tensor.ofInts(pos, b, t)));
        if (cache != null) cache.begin(t, mask);
        for (int i = 0; i < decoder.layers.size(); i++) {
            Layer layer = decoder.layers.get(i);
            x = layer(i, x, cache, in -> layer.forward(in, mask, cache, this));
        }
        if (cache != null) cache.advance();
        if (c.hasFinalLayerNorm()) x = norm(decoder.finalLayerNorm, x);
        if (decoder.projectOut != null) x = decoder.projectOut.forward(x);
        return x;
    }

    /**
     * transformers' default positions: {@code cumsum(mask) * mask - 1} (0.. T-1 without a mask). After earlier
     * cached positions they depend on the mask of the whole sequence, which the caller must then supply as
     * positions.
     */
    private static int[] positionsFromMask(int b, int t, Tensor mask, KvCache cache) {
        if (cache != null && cache.length() > 0)
            throw new IllegalArgumentException("opt: a forward after " + cache.length() + " cached positions needs "
                    + "explicit positions (cumsum(attention_mask) - 1 over the whole sequence, as transformers' "
                    + "generate passes them): OPT's default positions count the earlier tokens' padding");
        int[] m = mask == null ? null : mask.toIntArray();
        int[] pos = new int[b * t];
        for (int i = 0; i < b; i++) {
            int real = 0;
            for (int j = 0; j < t; j++) {
                int k = i * t + j;
                boolean on = m == null || m[k] != 0;
                if (on) real++;
                pos[k] = on ? real - 1 : -1;
            }
        }
        return pos;
    }

    /** A LayerNorm, or (layer_norm_elementwise_affine = false) the bare normalisation. */
    private static Tensor norm(LayerNorm ln, Tensor x) {
        return ln != null ? ln.forward(x) : Functional.layerNorm(x, null, null, OptConfig.LAYER_NORM_EPS);
    }

    private static LayerNorm layerNorm(OptConfig c) {
        return c.layerNormElementwiseAffine() ? new LayerNorm(c.hiddenSize(), OptConfig.LAYER_NORM_EPS) : null;
    }

    /** transformers' OPTDecoder, whose declaration order (final_layer_norm before layers) names come out in. */
    static final class Decoder extends Module {
        final Embedding embedTokens, embedPositions;
        final Linear projectOut, projectIn; // null unless word_embed_proj_dim != hidden_size
        final LayerNorm finalLayerNorm; // null post-LN, or without affine parameters
        final List<Layer> layers;

        Decoder(OptConfig c) {
            embedTokens = module("embed_tokens", new Embedding(c.vocabSize(), c.wordEmbedProjDim(), c.initStd()));
            embedPositions = module("embed_positions",
                    new Embedding(c.maxPositionEmbeddings() + POSITION_OFFSET, c.hiddenSize(), c.initStd()));
            projectOut = c.projects()
                    ? module("project_out", new Linear(c.hiddenSize(), c.wordEmbedProjDim(), false, c.initStd())) : null;
            projectIn = c.projects()
                    ? module("project_in", new Linear(c.wordEmbedProjDim(), c.hiddenSize(), false, c.initStd())) : null;
            LayerNorm fln = c.hasFinalLayerNorm() ? layerNorm(c) : null;
            finalLayerNorm = fln == null ? null : module("final_layer_norm", fln);
            List<Layer> list = new ArrayList<>();
            for (int i = 0; i < c.numHiddenLayers(); i++) list.add(new Layer(c, i));
            layers = modules("layers", list);
        }
    }

    static final class Layer extends Module {
        final Attention selfAttn;
        final LayerNorm selfAttnLayerNorm, finalLayerNorm; // null without affine parameters
        final Linear fc1, fc2;
        private final OptConfig c;

        Layer(OptConfig c, int layer) {
            this.c = c;
            selfAttn = module("self_attn", new Attention(c, layer));
            LayerNorm ln1 = layerNorm(c);
            selfAttnLayerNorm = ln1 == null ? null : module("self_attn_layer_norm", ln1);
            fc1 = module("fc1", new Linear(c.hiddenSize(), c.ffnDim(), c.enableBias(), c.initStd()));
            fc2 = module("fc2", new Linear(c.ffnDim(), c.hiddenSize(), c.enableBias(), c.initStd()));
            LayerNorm ln2 = layerNorm(c);
            finalLayerNorm = ln2 == null ? null : module("final_layer_norm", ln2);
        }

        Tensor forward(Tensor x, Tensor mask, KvCache cache, OptModel model) {
            boolean pre = c.doLayerNormBefore();
            Tensor h = selfAttn.forward(pre ? norm(selfAttnLayerNorm, x) : x, mask, cache);
            x = x.add(model.dropout(h, c.dropout()));
            if (!pre) x = norm(selfAttnLayerNorm, x);
            h = fc2.forward(relu(fc1.forward(pre ? norm(finalLayerNorm, x) : x)));
            x = x.add(model.dropout(h, c.dropout()));
            if (!pre) x = norm(finalLayerNorm, x);
            return x;
        }
    }

    static final class Attention extends Module {
        final Linear kProj, vProj, qProj, outProj;
        private final OptConfig c;
        private final int layer;

        Attention(OptConfig c, int layer) {
            this.c = c;
            this.layer = layer;
            int e = c.hiddenSize();
            kProj = module("k_proj", new Linear(e, e, c.enableBias(), c.initStd()));
            vProj = module("v_proj", new Linear(e, e, c.enableBias(), c.initStd()));
            qProj = module("q_proj", new Linear(e, e, c.enableBias(), c.initStd()));
            outProj = module("out_proj", new Linear(e, e, c.enableBias(), c.initStd()));
        }

        Tensor forward(Tensor x, Tensor mask, KvCache cache) {
            int b = x.size(0), t = x.size(1), nh = c.numAttentionHeads(), hd = c.headDim();
            Tensor q = qProj.forward(x).reshape(b, t, nh, hd);
            Tensor k = kProj.forward(x).reshape(b, t, nh, hd);
            Tensor v = vProj.forward(x).reshape(b, t, nh, hd);
            // transformers multiplies q_proj's output by head_dim^-0.5; scaling the scores instead is the same
            // product and saves a pass over q.
            Tensor y = Transformer.attention(q, k, v, mask, 1.0 / Math.sqrt(hd), 0, cache, layer);
            return outProj.forward(y.reshape(b, t, c.hiddenSize()));
        }
    }
}
