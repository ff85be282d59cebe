package io.github.rlhf4j.data;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Step 1's samples, as DeepSpeed-Chat's {@code create_dataset_split(train_phase=1)} makes them: {@code prompt +
 * chosen + end-of-conversation token}, tokenized with special tokens, cut at {@code maxSeqLen} tokens (so a long text
 * loses its end, the end-of-conversation token included), padded on the right to {@code maxSeqLen}; labels are the
 * ids on tokens and -100 on padding. The loss covers the prompt too, as in DeepSpeed-Chat.
 */
public final class SftSamples implements Samples<LmBatch> {
    private final int[][] tokens;
    private final int maxSeqLen, padId;
    private final SkipReport skips;

    private SftSamples(int[][] tokens, int maxSeqLen, int padId, SkipReport skips) {
        this.tokens = tokens;
        this.maxSeqLen = maxSeqLen;
        this.padId = padId;
        this.skips = skips;
    }

    /** Tokenizes the rows (all of them: step 1 drops none). */
    public static SftSamples build(Rows<PreferenceRow> rows, TextEncoder encoder, int maxSeqLen) {
        Objects.requireNonNull(encoder, "encoder");
        if (maxSeqLen < 1) throw new IllegalArgumentException("maxSeqLen must be at least 1, got " + maxSeqLen);
        List<String> texts = new ArrayList<>(rows.size());
        for (PreferenceRow r : rows) texts.add(r.promptAndChosen() + encoder.endOfConversationToken());
        return new SftSamples(encoder.encode(texts, maxSeqLen), maxSeqLen, encoder.padId(), rows.skips());
    }

    @Override
    public int size() {
        return tokens.length;
    }

    /** Sample {@code i}'s ids without padding. */
    public int[] tokens(int i) {
        return tokens[i].clone();
    }

    public int maxSeqLen() {
        return maxSeqLen;
    }

    @Override
    public LmBatch batch(int[] indices) {
        int[][] seqs = new int[indices.length][];
        for (int i = 0; i < indices.length; i++) seqs[i] = tokens[indices[i]];
        int[][] padded = Batch.pad(seqs, maxSeqLen, padId, false);
        int[] labels = padded[0].clone();
        for (int i = 0; i < labels.length; i++) if (padded[1][i] == 0) labels[i] = LmBatch.IGNORE;
        return new LmBatch(indices.length, maxSeqLen, padded[0], padded[1], labels);
    }

    @Override
    public SkipReport skips() {
        return skips;
    }
}
