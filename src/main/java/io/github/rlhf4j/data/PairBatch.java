package io.github.rlhf4j.data;

/**
 * A reward-model batch as DeepSpeed-Chat's {@code DataCollatorReward} stacks it, row-major {@code [2 * pairs,
 * columns]}: rows {@code 0 .. pairs-1} are the chosen texts, rows {@code pairs .. 2*pairs-1} the rejected ones in the
 * same order, each prompt + answer + end-of-conversation token, padded on the right to {@code columns} (max_seq_len).
 */
public record PairBatch(int pairs, int columns, int[] inputIds, int[] attentionMask) {
    public PairBatch {
        Batch.check(2 * pairs, columns, inputIds, attentionMask);
    }

    /** {@code 2 * pairs}. */
    public int rows() {
        return 2 * pairs;
    }
}
