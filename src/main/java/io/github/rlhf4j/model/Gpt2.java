package io.github.rlhf4j.model;

import static io.github.rlhf4j.tensor.Functional.attention;
import static io.github.rlhf4j.tensor.Functional.dropout;
import static io.github.rlhf4j.tensor.Functional.geluTanh;
import static io.github.rlhf4j.tensor.Functional.linear;

import io.github.rlhf4j.nn.Conv1D;
import io.github.rlhf4j.nn.Embedding;
import io.github.rlhf4j.nn.LayerNorm;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * GPT-2 as transformers' GPT2LMHeadModel computes it, with its parameter names: pre-LN blocks, Conv1D weights stored
 * [in, out], fused qkv projection, gelu_new, learned positions, and the LM head tied to the token embedding.
 *
 * <pre>
 * x = wte[ids] + wpe[pos]
 * for each block:  x = x + c_proj(attn(ln_1(x)))
 *                  x = x + mlp.c_proj(gelu_new(mlp.c_fc(ln_2(x))))
 * logits = ln_f(x) . wte^T
 * </pre>
 */
public final class Gpt2 extends Module {
    private final Gpt2Config config;
    private final Transformer transformer;
    private long dropoutSeed;

    public Gpt2(Gpt2Config config) {
        this.config = config;
        this.transformer = module("transformer", new Transformer(config));
    }

    public Gpt2Config config() {
        return config;
    }

    /** Seed of the dropout masks of the next forward (each call advances it). */
    public void setDropoutSeed(long seed) {
        this.dropoutSeed = seed;
    }

    /** The final hidden states [B, T, n_embd] (what a value head reads). */
    public Tensor hidden(Tensor ids, Tensor attentionMask, Tensor positions) {
        return transformer.forward(ids, attentionMask, positions, this);
    }

    /**
     * Logits [B, T, vocab] for I32 ids [B, T]. {@code attentionMask} (I32 [B, T], 0 = padding) may be null;
     * {@code positions} (I32 [B, T]) default to 0..T-1.
     */
    public Tensor forward(Tensor ids, Tensor attentionMask, Tensor positions) {
        Tensor h = hidden(ids, attentionMask, positions);
        return linear(h, transformer.wte.weight.value(), null); // tied LM head
    }

    private double drop(double p) {
        return isTraining() ? p : 0.0;
    }

    private long nextSeed() {
        return dropoutSeed++;
    }

    static final class Transformer extends Module {
        final Embedding wte, wpe;
        final List<Block> h;
        final LayerNorm lnF;
        private final Gpt2Config c;

        Transformer(Gpt2Config c) {
            this.c = c;
            wte = module("wte", new Embedding(c.vocabSize(), c.nEmbd(), c.initializerRange()));
            wpe = module("wpe", new Embedding(c.nPositions(), c.nEmbd(), c.initializerRange()));
            List<Block> blocks = new ArrayList<>();
            for (int i = 0; i < c.nLayer(); i++) blocks.add(new Block(c));
            h = modules("h", blocks);
            lnF = module("ln_f", new LayerNorm(c.nEmbd(), c.layerNormEpsilon()));
        }

        Tensor forward(Tensor ids, Tensor mask, Tensor positions, Gpt2 model) {
            int b = ids.size(0), t = ids.size(1);
            if (t > c.nPositions())
                throw new IllegalArgumentException("sequence length " + t + " exceeds n_positions = " + c.nPositions());
            Tensor pos = positions != null ? positions : Tensor.arange(t).unsqueeze(0).expand(b, t).contiguous();
            Tensor x = wte.forward(ids).add(wpe.forward(pos));
            x = dropout(x, model.drop(c.embdPdrop()), model.nextSeed(), 0);
            for (Block block : h) x = block.forward(x, mask, model);
            return lnF.forward(x);
        }
    }

    static final class Block extends Module {
        final LayerNorm ln1, ln2;
        final Attention attn;
        final Mlp mlp;
        private final Gpt2Config c;

        Block(Gpt2Config c) {
            this.c = c;
            ln1 = module("ln_1", new LayerNorm(c.nEmbd(), c.layerNormEpsilon()));
            attn = module("attn", new Attention(c));
            ln2 = module("ln_2", new LayerNorm(c.nEmbd(), c.layerNormEpsilon()));
            mlp = module("mlp", new Mlp(c));
        }

        Tensor forward(Tensor x, Tensor mask, Gpt2 model) {
            Tensor a = attn.forward(ln1.forward(x), mask);
            x = x.add(dropout(a, model.drop(c.residPdrop()), model.nextSeed(), 0));
            Tensor m = mlp.cProj.forward(geluTanh(mlp.cFc.forward(ln2.forward(x))));
            return x.add(dropout(m, model.drop(c.residPdrop()), model.nextSeed(), 0));
        }
    }

    static final class Attention extends Module {
        final Conv1D cAttn, cProj;
        private final Gpt2Config c;

        Attention(Gpt2Config c) {
            this.c = c;
            cAttn = module("c_attn", new Conv1D(c.nEmbd(), 3 * c.nEmbd(), c.initializerRange()));
            // transformers scales the residual projections' init by 1/sqrt(2 n_layer)
            cProj = module("c_proj", new Conv1D(c.nEmbd(), c.nEmbd(),
                    c.initializerRange() / Math.sqrt(2.0 * c.nLayer())));
        }

        Tensor forward(Tensor x, Tensor mask) {
            int b = x.size(0), t = x.size(1), e = c.nEmbd(), nh = c.nHead(), hd = c.headDim();
            Tensor qkv = cAttn.forward(x); // [B, T, 3E]; q, k, v are column slices viewed as heads, no copy
            Tensor q = qkv.slice(2, 0, e).reshape(b, t, nh, hd);
            Tensor k = qkv.slice(2, e, 2 * e).reshape(b, t, nh, hd);
            Tensor v = qkv.slice(2, 2 * e, 3 * e).reshape(b, t, nh, hd);
            Tensor y = attention(q, k, v, mask, 1.0 / Math.sqrt(hd), true, 0);
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
