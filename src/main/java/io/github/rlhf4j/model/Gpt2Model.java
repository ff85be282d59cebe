package io.github.rlhf4j.model;

import static io.github.rlhf4j.tensor.Functional.geluTanh;

import io.github.rlhf4j.nn.Conv1D;
import io.github.rlhf4j.nn.Embedding;
import io.github.rlhf4j.nn.LayerNorm;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * GPT-2 as transformers' GPT2Model computes it, with its parameter names: pre-LN blocks, Conv1D weights stored
 * [in, out], fused qkv projection, gelu_new, learned positions. {@link CausalLM} adds the LM head tied to wte.
 *
 * <pre>
 * x = wte[ids] + wpe[pos]
 * for each block:  x = x + c_proj(attn(ln_1(x)))
 *                  x = x + mlp.c_proj(gelu_new(mlp.c_fc(ln_2(x))))
 * hidden = ln_f(x)
 * </pre>
 */
public final class Gpt2Model extends Transformer {
    private final Gpt2Config c;
    final Embedding wte, wpe;
    final List<Block> h;
    final LayerNorm lnF;

    public Gpt2Model(Gpt2Config c) {
        this.c = c;
        wte = module("wte", new Embedding(c.vocabSize(), c.nEmbd(), c.initializerRange()));
        wpe = module("wpe", new Embedding(c.nPositions(), c.nEmbd(), c.initializerRange()));
        List<Block> blocks = new ArrayList<>();
        for (int i = 0; i < c.nLayer(); i++) blocks.add(new Block(c, i));
        h = modules("h", blocks);
        lnF = module("ln_f", new LayerNorm(c.nEmbd(), c.layerNormEpsilon()));
    }

    @Override
    public Gpt2Config config() {
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
        Tensor x = dropout(wte.forward(ids).add(wpe.forward(pos)), c.embdPdrop());
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
        private final Gpt2Config c;

        Block(Gpt2Config c, int layer) {
            this.c = c;
            ln1 = module("ln_1", new LayerNorm(c.nEmbd(), c.layerNormEpsilon()));
            attn = module("attn", new Attention(c, layer));
            ln2 = module("ln_2", new LayerNorm(c.nEmbd(), c.layerNormEpsilon()));
            mlp = module("mlp", new Mlp(c));
        }

        Tensor forward(Tensor x, Tensor mask, KvCache cache, Gpt2Model model) {
            x = x.add(model.dropout(attn.forward(ln1.forward(x), mask, cache), c.residPdrop()));
            Tensor m = mlp.cProj.forward(geluTanh(mlp.cFc.forward(ln2.forward(x))));
            return x.add(model.dropout(m, c.residPdrop()));
        }
    }

    static final class Attention extends Module {
        final Conv1D cAttn, cProj;
        private final Gpt2Config c;
        private final int layer;

        Attention(Gpt2Config c, int layer) {
            this.c = c;
            this.layer = layer;
            cAttn = module("c_attn", new Conv1D(c.nEmbd(), 3 * c.nEmbd(), c.initializerRange()));
            // transformers scales the residual projections' init by 1/sqrt(2 n_layer)
            cProj = module("c_proj", new Conv1D(c.nEmbd(), c.nEmbd(),
                    c.initializerRange() / Math.sqrt(2.0 * c.nLayer())));
        }

        Tensor forward(Tensor x, Tensor mask, KvCache cache) {
            int b = x.size(0), t = x.size(1), e = c.nEmbd(), nh = c.nHead(), hd = c.headDim();
            Tensor qkv = cAttn.forward(x); // [B, T, 3E]; q, k, v are column slices viewed as heads, no copy
            Tensor q = qkv.slice(2, 0, e).reshape(b, t, nh, hd);
            Tensor k = qkv.slice(2, e, 2 * e).reshape(b, t, nh, hd);
            Tensor v = qkv.slice(2, 2 * e, 3 * e).reshape(b, t, nh, hd);
            Tensor y = Transformer.attention(q, k, v, mask, 1.0 / Math.sqrt(hd), 0, cache, layer);
            return cProj.forward(y.reshape(b, t, e));
        }
    }

    static final class Mlp extends Module {
        final Conv1D cFc, cProj;

        Mlp(Gpt2Config c) {
            cFc = module("c_fc", new Conv1D(c.nEmbd(), 4 * c.nEmbd(), c.initializerRange()));
            cProj = module("c_proj", new Conv1D(4 * c.nEmbd(), c.nEmbd(),
                    c.initializerRange() / Math.sqrt(2.0 * c.nLayer())));
        }
    }
}
