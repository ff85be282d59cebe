package io.github.rlhf4j.model;

import static io.github.rlhf4j.tensor.Functional.geluTanh;

import io.github.rlhf4j.nn.Embedding;
import io.github.rlhf4j.nn.LayerNorm;
import io.github.rlhf4j.nn.Linear;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * GPT-Neo as transformers' GPTNeoModel computes it, with its parameter names ({@code h.0.attn.attention.q_proj}):
 * GPT-2's pre-LN layout with separate bias-free q/k/v projections, attention scores NOT scaled by 1/sqrt(head_dim)
 * (GPT-Neo was trained without it), and layers alternating per attention_types between global attention and local
 * attention over the last window_size positions (padding included, as transformers' causal-mask buffer counts them).
 * {@link CausalLM} adds the LM head tied to wte.
 *
 * <pre>
 * x = wte[ids] + wpe[pos]
 * for each block:  x = x + out_proj(attn(ln_1(x)))         attn: softmax(q k^T) v, causal, local layers windowed
 *                  x = x + mlp.c_proj(gelu_new(mlp.c_fc(ln_2(x))))
 * hidden = ln_f(x)
 * </pre>
 */
public final class GptNeoModel extends Transformer {
    private final GptNeoConfig c;
    final Embedding wte, wpe;
    final List<Block> h;
    final LayerNorm lnF;

    public GptNeoModel(GptNeoConfig c) {
        this.c = c;
        wte = module("wte", new Embedding(c.vocabSize(), c.hiddenSize(), c.initializerRange()));
        wpe = module("wpe", new Embedding(c.maxPositionEmbeddings(), c.hiddenSize(), c.initializerRange()));
        List<Block> blocks = new ArrayList<>();
        for (int i = 0; i < c.numLayers(); i++) blocks.add(new Block(c, i));
        h = modules("h", blocks);
        lnF = module("ln_f", new LayerNorm(c.hiddenSize(), c.layerNormEpsilon()));
    }

    @Override
    public GptNeoConfig config() {
        return c;
    }

    @Override
    public Tensor tokenEmbedding() {
        return wte.weight.value();
    }

    @Override
    public Tensor forward(Tensor ids, Tensor mask, Tensor positions, KvCache cache) {
        checkInputs(ids, mask, positions, cache);
        int b = ids.size(0), t = ids.size(1);
        Tensor pos = positions != null ? positions : defaultPositions(b, t, cache);
        Tensor x = dropout(wte.forward(ids).add(wpe.forward(pos)), c.embedDropout());
        if (cache != null) cache.begin(t, mask);
        for (int i = 0; i < h.size(); i++) {
            Block block = h.get(i);
            x = layer(i, x, cache, in -> block.forward(in, mask, cache, this));
        }
        if (cache != null) cache.advance();
        return lnF.forward(x);
    }

    static final class Block extends Module {
        final LayerNorm ln1, ln2;
        final Attention attn;
        final Mlp mlp;
        private final GptNeoConfig c;

        Block(GptNeoConfig c, int layer) {
            this.c = c;
            ln1 = module("ln_1", new LayerNorm(c.hiddenSize(), c.layerNormEpsilon()));
            attn = module("attn", new Attention(c, layer));
            ln2 = module("ln_2", new LayerNorm(c.hiddenSize(), c.layerNormEpsilon()));
            mlp = module("mlp", new Mlp(c));
        }

        Tensor forward(Tensor x, Tensor mask, KvCache cache, GptNeoModel model) {
            x = x.add(model.dropout(attn.attention.forward(ln1.forward(x), mask, cache), c.residDropout()));
            Tensor m = mlp.cProj.forward(geluTanh(mlp.cFc.forward(ln2.forward(x))));
            return x.add(model.dropout(m, c.residDropout()));
        }
    }

    /** transformers' GPTNeoAttention: a holder whose one child, {@code attention}, is the self-attention. */
    static final class Attention extends Module {
        final SelfAttention attention;

        Attention(GptNeoConfig c, int layer) {
            attention = module("attention", new SelfAttention(c, layer));
        }
    }

    static final class SelfAttention extends Module {
        final Linear kProj, vProj, qProj, outProj;
        private final GptNeoConfig c;
        private final int layer;

        SelfAttention(GptNeoConfig c, int layer) {
            this.c = c;
            this.layer = layer;
            int e = c.hiddenSize();
            double std = c.initializerRange();
            kProj = module("k_proj", new Linear(e, e, false, std));
            vProj = module("v_proj", new Linear(e, e, false, std));
            qProj = module("q_proj", new Linear(e, e, false, std));
            outProj = module("out_proj", new Linear(e, e, true, std));
        }

        Tensor forward(Tensor x, Tensor mask, KvCache cache) {
            int b = x.size(0), t = x.size(1), nh = c.numHeads(), hd = c.headDim();
            Tensor q = qProj.forward(x).reshape(b, t, nh, hd);
            Tensor k = kProj.forward(x).reshape(b, t, nh, hd);
            Tensor v = vProj.forward(x).reshape(b, t, nh, hd);
            // scale 1: GPT-Neo's scores are the raw q k^T
            Tensor y = Transformer.attention(q, k, v, mask, 1.0, c.window(layer), cache, layer);
            return outProj.forward(y.reshape(b, t, c.hiddenSize()));
        }
    }

    static final class Mlp extends Module {
        final Linear cFc, cProj;

        Mlp(GptNeoConfig c) {
            cFc = module("c_fc", new Linear(c.hiddenSize(), c.intermediateSize(), true, c.initializerRange()));
            cProj = module("c_proj", new Linear(c.intermediateSize(), c.hiddenSize(), true, c.initializerRange()));
        }
    }
}
