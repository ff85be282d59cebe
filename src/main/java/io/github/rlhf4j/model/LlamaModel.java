package io.github.rlhf4j.model;

import static io.github.rlhf4j.tensor.Functional.rope;
import static io.github.rlhf4j.tensor.Functional.silu;

import io.github.rlhf4j.nn.Embedding;
import io.github.rlhf4j.nn.Linear;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.nn.RmsNorm;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * Llama and Qwen2 as transformers' LlamaModel and Qwen2Model compute them, with their parameter names: pre-norm
 * blocks with RMSNorm, rotary position embedding (rotate-half) on q and k, grouped-query attention, a SwiGLU MLP;
 * no dropout anywhere (attention_dropout must be 0). {@link CausalLM} adds lm_head, or ties it to embed_tokens.
 *
 * <pre>
 * x = embed_tokens[ids]
 * for each layer:  h = input_layernorm(x)
 *                  q, k = rope(q_proj(h)), rope(k_proj(h)) at the positions;  v = v_proj(h)
 *                  x = x + o_proj(attention(q, k, v))            (kv heads shared by groups of q heads; Qwen2's
 *                                                                 sliding layers see the last sliding_window keys)
 *                  x = x + down_proj(silu(gate_proj(g)) * up_proj(g))   where g = post_attention_layernorm(x)
 * hidden = norm(x)
 * </pre>
 *
 * <p>RoPE's inv_freq is computed once ({@link Rope}) in float32 arithmetic for F32 / BF16 / F16 activations, as
 * transformers computes it, and in double for F64 ones, whose angles, cos and sin the rope op also takes in double:
 * transformers rounds those (and RMSNorm's input) to float32 even in a float64 model, rlhf4j's F64 does not.
 */
public final class LlamaModel extends Transformer {
    private final LlamaConfig c;
    private final float[] invFreq32;
    private final double[] invFreq64;
    final Embedding embedTokens;
    final List<DecoderLayer> layers;
    final RmsNorm norm;

    public LlamaModel(LlamaConfig c) {
        this.c = c;
        invFreq32 = c.rope().invFreq32();
        invFreq64 = c.rope().invFreq64();
        embedTokens = module("embed_tokens", new Embedding(c.vocabSize(), c.hiddenSize(), c.initializerRange()));
        List<DecoderLayer> list = new ArrayList<>();
        for (int i = 0; i < c.numHiddenLayers(); i++) list.add(new DecoderLayer(c, i));
        layers = modules("layers", list);
        norm = module("norm", new RmsNorm(c.hiddenSize(), c.rmsNormEps()));
    }

    @Override
    public LlamaConfig config() {
        return c;
    }

    @Override
    public Tensor tokenEmbedding() {
        return embedTokens.weight.value();
    }

    @Override
    public Tensor forward(Tensor ids, Tensor mask, Tensor positions, KvCache cache) {
        checkInputs(ids, mask, positions, cache);
        int b = ids.size(0), t = ids.size(1);
        Tensor pos = positions != null ? positions : defaultPositions(b, t, cache);
        Tensor x = embedTokens.forward(ids);
        Tensor invFreq = x.dtype() == DType.F64 ? Tensor.of(invFreq64) : Tensor.of(invFreq32);
        if (cache != null) cache.begin(t, mask);
        for (int i = 0; i < layers.size(); i++) {
            DecoderLayer layer = layers.get(i);
            x = layer(i, x, cache, in -> layer.forward(in, mask, pos, invFreq, cache));
        }
        if (cache != null) cache.advance();
        return norm.forward(x);
    }

    static final class DecoderLayer extends Module {
        final Attention selfAttn;
        final Mlp mlp;
        final RmsNorm inputLayernorm, postAttentionLayernorm;

        DecoderLayer(LlamaConfig c, int layer) {
            selfAttn = module("self_attn", new Attention(c, layer));
            mlp = module("mlp", new Mlp(c));
            inputLayernorm = module("input_layernorm", new RmsNorm(c.hiddenSize(), c.rmsNormEps()));
            postAttentionLayernorm = module("post_attention_layernorm", new RmsNorm(c.hiddenSize(), c.rmsNormEps()));
        }

        Tensor forward(Tensor x, Tensor mask, Tensor positions, Tensor invFreq, KvCache cache) {
            x = x.add(selfAttn.forward(inputLayernorm.forward(x), mask, positions, invFreq, cache));
            return x.add(mlp.forward(postAttentionLayernorm.forward(x)));
        }
    }

    static final class Attention extends Module {
        final Linear qProj, kProj, vProj, oProj;
        private final LlamaConfig c;
        private final int layer;
        private final double scaling;

        Attention(LlamaConfig c, int layer) {
            this.c = c;
            this.layer = layer;
            this.scaling = Math.pow(c.headDim(), -0.5); // transformers' head_dim ** -0.5
            int h = c.hiddenSize(), q = c.numAttentionHeads() * c.headDim(), kv = c.numKeyValueHeads() * c.headDim();
            double std = c.initializerRange();
            qProj = module("q_proj", new Linear(h, q, c.qkvBias(), std));
            kProj = module("k_proj", new Linear(h, kv, c.qkvBias(), std));
            vProj = module("v_proj", new Linear(h, kv, c.qkvBias(), std));
            oProj = module("o_proj", new Linear(q, h, c.oProjBias(), std));
        }

        Tensor forward(Tensor x, Tensor mask, Tensor positions, Tensor invFreq, KvCache cache) {
            int b = x.size(0), t = x.size(1), hd = c.headDim(), nh = c.numAttentionHeads(), nkv = c.numKeyValueHeads();
            int rot = c.rope().dim();
            Tensor q = rope(qProj.forward(x).reshape(b, t, nh, hd), positions, invFreq, rot);
            Tensor k = rope(kProj.forward(x).reshape(b, t, nkv, hd), positions, invFreq, rot);
            Tensor v = vProj.forward(x).reshape(b, t, nkv, hd);
            Tensor y = Transformer.attention(q, k, v, mask, scaling, c.window(layer), cache, layer);
            return oProj.forward(y.reshape(b, t, nh * hd));
        }
    }

    static final class Mlp extends Module {
        final Linear gateProj, upProj, downProj;

        Mlp(LlamaConfig c) {
            double std = c.initializerRange();
            gateProj = module("gate_proj", new Linear(c.hiddenSize(), c.intermediateSize(), c.mlpBias(), std));
            upProj = module("up_proj", new Linear(c.hiddenSize(), c.intermediateSize(), c.mlpBias(), std));
            downProj = module("down_proj", new Linear(c.intermediateSize(), c.hiddenSize(), c.mlpBias(), std));
        }

        Tensor forward(Tensor x) {
            return downProj.forward(silu(gateProj.forward(x)).mul(upProj.forward(x)));
        }
    }
}
