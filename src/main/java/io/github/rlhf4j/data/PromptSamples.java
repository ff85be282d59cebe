package io.github.rlhf4j.data;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Step 3's prompts, as DeepSpeed-Chat's {@code create_dataset_split(train_phase=3)} and {@code DataCollatorRLHF}
 * make them: each prompt tokenized alone (special tokens added, no truncation); a prompt of more than
 * {@code maxPromptSeqLen} tokens is dropped and counted ({@link SkipReason#PROMPT_TOO_LONG}); batches pad every
 * prompt on the LEFT to exactly {@code maxPromptSeqLen}. Over-long prompts are dropped from each dataset before the
 * datasets are blended, as in DeepSpeed-Chat.
 */
public final class PromptSamples implements Samples<PromptBatch> {
    private final int[][] tokens;
    private final int maxPromptSeqLen, padId;
    private final SkipReport skips;

    private PromptSamples(int[][] tokens, int maxPromptSeqLen, int padId, SkipReport skips) {
        this.tokens = tokens;
        this.maxPromptSeqLen = maxPromptSeqLen;
        this.padId = padId;
        this.skips = skips;
    }

    public static PromptSamples build(Rows<PromptRow> rows, TextEncoder encoder, int maxPromptSeqLen) {
        Objects.requireNonNull(encoder, "encoder");
        if (maxPromptSeqLen < 1)
            throw new IllegalArgumentException("maxPromptSeqLen must be at least 1, got " + maxPromptSeqLen);
        SkipReport skips = rows.skips().copy();
        List<List<int[]>> kept = new ArrayList<>();
        for (Rows.Part<PromptRow> part : rows.parts()) {
            int[][] ids = encoder.encode(part.rows().stream().map(PromptRow::prompt).toList(), Integer.MAX_VALUE);
            List<int[]> ok = new ArrayList<>(ids.length);
            for (int i = 0; i < ids.length; i++) {
                if (ids[i].length <= maxPromptSeqLen) ok.add(ids[i]);
                else skips.skip(part.positions().get(i), SkipReason.PROMPT_TOO_LONG, "the prompt has "
                        + ids[i].length + " tokens, more than max_prompt_seq_len = " + maxPromptSeqLen);
            }
            kept.add(ok);
        }
        return new PromptSamples(Rows.blend(kept, rows.seed()).toArray(int[][]::new), maxPromptSeqLen,
                encoder.padId(), skips);
    }

    @Override
    public int size() {
        return tokens.length;
    }

    /** Prompt {@code i}'s ids without padding. */
    public int[] tokens(int i) {
        return tokens[i].clone();
    }

    public int maxPromptSeqLen() {
        return maxPromptSeqLen;
    }

    @Override
    public PromptBatch batch(int[] indices) {
        int[][] seqs = new int[indices.length][];
        for (int i = 0; i < indices.length; i++) seqs[i] = tokens[indices[i]];
        int[][] padded = Batch.pad(seqs, maxPromptSeqLen, padId, true);
        return new PromptBatch(indices.length, maxPromptSeqLen, padded[0], padded[1]);
    }

    @Override
    public SkipReport skips() {
        return skips;
    }
}
