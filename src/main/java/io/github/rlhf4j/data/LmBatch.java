package io.github.rlhf4j.data;

/**
 * A causal-LM batch, row-major {@code [rows, columns]}: step 1's samples (DeepSpeed-Chat's {@code PromptDataset}
 * for {@code train_phase=1}) and the ptx blocks of step 3.
 *
 * @param inputIds token ids, padded on the right
 * @param attentionMask 1 on tokens, 0 on padding
 * @param labels the ids where the mask is 1 and -100 (ignored by the loss) where it is 0; the loss shifts them
 */
public record LmBatch(int rows, int columns, int[] inputIds, int[] attentionMask, int[] labels) {
    /** The label of positions the loss ignores. */
    public static final int IGNORE = -100;

    public LmBatch {
        Batch.check(rows, columns, inputIds, attentionMask);
        if (labels.length != inputIds.length)
            throw new IllegalArgumentException("labels: " + labels.length + " values for " + rows + "x" + columns);
    }

    /** The ids of row {@code r}, padding included. */
    public int[] row(int r) {
        return java.util.Arrays.copyOfRange(inputIds, r * columns, (r + 1) * columns);
    }
}
