package io.github.rlhf4j.data;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The unsupervised (ptx) data of step 3, as DeepSpeed-Chat's {@code get_unsupervised_data} makes it: every text
 * tokenized (special tokens added), then, in runs of {@value #MAP_BATCH} texts ({@code datasets.map}'s default batch,
 * which {@code group_texts} sees one at a time), the ids concatenated and cut into blocks of {@code blockSize}
 * ({@code max_prompt_seq_len + max_answer_seq_len}) tokens, the remainder of each run dropped. Labels are the ids.
 * (Where a whole run has fewer than {@code blockSize} tokens, DeepSpeed-Chat keeps one short block that its collator
 * cannot stack; here it is dropped.)
 */
public final class TextBlocks implements Samples<LmBatch> {
    /** Texts grouped together, as {@code datasets.map(batched=True)} groups them. */
    public static final int MAP_BATCH = 1000;

    private final int[][] blocks;
    private final int blockSize;
    private final SkipReport skips;

    private TextBlocks(int[][] blocks, int blockSize, SkipReport skips) {
        this.blocks = blocks;
        this.blockSize = blockSize;
        this.skips = skips;
    }

    public static TextBlocks build(Rows<TextRow> rows, TextEncoder encoder, int blockSize) {
        Objects.requireNonNull(encoder, "encoder");
        if (blockSize < 1) throw new IllegalArgumentException("blockSize must be at least 1, got " + blockSize);
        List<int[]> blocks = new ArrayList<>();
        for (int start = 0; start < rows.size(); start += MAP_BATCH) {
            List<String> texts = rows.subList(start, Math.min(rows.size(), start + MAP_BATCH)).stream()
                    .map(TextRow::text).toList();
            int[][] ids = encoder.encode(texts, Integer.MAX_VALUE);
            int total = 0;
            for (int[] t : ids) total += t.length;
            int[] all = new int[total];
            int at = 0;
            for (int[] t : ids) {
                System.arraycopy(t, 0, all, at, t.length);
                at += t.length;
            }
            for (int b = 0; b + blockSize <= total; b += blockSize) blocks.add(Arrays.copyOfRange(all, b, b + blockSize));
        }
        return new TextBlocks(blocks.toArray(int[][]::new), blockSize, rows.skips());
    }

    @Override
    public int size() {
        return blocks.length;
    }

    /** Block {@code i}'s ids. */
    public int[] block(int i) {
        return blocks[i].clone();
    }

    public int blockSize() {
        return blockSize;
    }

    @Override
    public LmBatch batch(int[] indices) {
        int[] ids = new int[indices.length * blockSize], mask = new int[ids.length];
        for (int i = 0; i < indices.length; i++) System.arraycopy(blocks[indices[i]], 0, ids, i * blockSize, blockSize);
        Arrays.fill(mask, 1);
        return new LmBatch(indices.length, blockSize, ids, mask, ids.clone());
    }

    @Override
    public SkipReport skips() {
        return skips;
    }
}
