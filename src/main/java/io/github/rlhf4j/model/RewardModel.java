package io.github.rlhf4j.model;

import io.github.rlhf4j.nn.Linear;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.tensor.Tensor;

/**
 * DeepSpeed-Chat's reward model, which is also step 3's critic: the base transformer (named {@code rwtranrsformer},
 * DeepSpeed-Chat's spelling, so its checkpoints map one to one) and {@code v_head}, a bias-free
 * Linear(outputSize -> 1) giving every token a scalar score (OPT reads {@code word_embed_proj_dim}-wide states).
 */
public final class RewardModel extends Module {
    /** DeepSpeed-Chat's name of the base model inside the reward model (sic). */
    public static final String BASE_NAME = "rwtranrsformer";

    private final Transformer base;
    private final Linear vHead;

    public RewardModel(Transformer base) {
        ModelConfig c = base.config();
        this.base = module(BASE_NAME, base);
        // DS-Chat builds v_head with nn.Linear's default init; a small normal init keeps initial scores near 0.
        this.vHead = module("v_head", new Linear(c.outputSize(), 1, false, c.initializerRange()));
    }

    public static RewardModel of(ModelConfig config) {
        return new RewardModel(Models.base(config));
    }

    public ModelConfig config() {
        return base.config();
    }

    public Transformer base() {
        return base;
    }

    /** Per-token scores [B, T] for ids [B, T] with their attention mask (null: no padding). */
    public Tensor scores(Tensor ids, Tensor attentionMask) {
        return scores(ids, attentionMask, null);
    }

    /** As {@link #scores(Tensor, Tensor)} with explicit position ids [B, T] (null: the family's default). */
    public Tensor scores(Tensor ids, Tensor attentionMask, Tensor positions) {
        Tensor h = base.forward(ids, attentionMask, positions, null);
        Tensor s = vHead.forward(h); // [B, T, 1]
        return s.reshape(s.size(0), s.size(1));
    }
}
