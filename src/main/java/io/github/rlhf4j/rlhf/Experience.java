package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;

/**
 * One batch of step-3 experience, DeepSpeed-Chat's generate_experience output: the sequences (left-padded prompts of
 * {@code promptLength} columns, then the answers, padded), their attention mask (seq != pad), the actor's and the
 * reference's token logprobs [B, T-1], the reward model's score per sequence [B], and the critic's values [B, T-1].
 * The tensors live in the experience's own scope (it is trained on for several PPO epochs); close it when done.
 */
public record Experience(Tensor seq, Tensor attentionMask, Tensor logprobs, Tensor refLogprobs, Tensor rewardScore,
                         Tensor values, int promptLength, Stats stats, Scope scope) implements AutoCloseable {
    /** What generation gave: rows kept, rows dropped for answers of at most one token, mean answer length. */
    public record Stats(int rows, int dropped, double answerLength, double averageReward) {}

    @Override
    public void close() {
        scope.close();
    }
}
