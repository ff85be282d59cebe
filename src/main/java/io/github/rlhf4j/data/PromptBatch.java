package io.github.rlhf4j.data;

/**
 * Step 3's prompts as DeepSpeed-Chat's {@code DataCollatorRLHF} makes them, row-major {@code [rows, columns]}: each
 * prompt padded on the LEFT to exactly {@code columns} (max_prompt_seq_len), so that every answer starts at the same
 * column.
 */
public record PromptBatch(int rows, int columns, int[] inputIds, int[] attentionMask) {
    public PromptBatch {
        Batch.check(rows, columns, inputIds, attentionMask);
    }
}
