package io.github.rlhf4j.model;

import io.github.rlhf4j.nn.Linear;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Tensor;

/**
 * A causal language model, transformers' {@code AutoModelForCausalLM}: the family's base model under its base
 * prefix ({@code transformer.} or {@code model.}) and an LM head, tied to the token embedding or its own bias-free
 * {@code lm_head}. The actor and the reference of RLHF's step 3 and the model of step 1 are CausalLMs.
 */
public final class CausalLM extends Module {
    private final Transformer base;
    private final Linear lmHead; // null when tied

    public CausalLM(Transformer base) {
        ModelConfig c = base.config();
        this.base = module(c.basePrefix(), base);
        this.lmHead = c.tieWordEmbeddings() ? null
                : module("lm_head", new Linear(c.outputSize(), c.vocabSize(), false, c.initializerRange()));
    }

    /** A randomly initialisable model of {@code config}'s family (lay it out with a ParameterStore). */
    public static CausalLM of(ModelConfig config) {
        return new CausalLM(Models.base(config));
    }

    public ModelConfig config() {
        return base.config();
    }

    public Transformer base() {
        return base;
    }

    /** Logits [B, T, vocab]; arguments as {@link Transformer#forward}. */
    public Tensor forward(Tensor ids, Tensor attentionMask, Tensor positions, KvCache cache) {
        return logits(base.forward(ids, attentionMask, positions, cache));
    }

    /** Logits [B, T, vocab] for ids [B, T] without padding or cache. */
    public Tensor forward(Tensor ids) {
        return forward(ids, null, null, null);
    }

    /** The LM head on hidden states [..., outputSize]. */
    public Tensor logits(Tensor hidden) {
        return lmHead == null ? Functional.linear(hidden, base.tokenEmbedding(), null) : lmHead.forward(hidden);
    }
}
