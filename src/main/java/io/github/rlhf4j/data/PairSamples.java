package io.github.rlhf4j.data;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Step 2's samples, as DeepSpeed-Chat's {@code create_dataset_split(train_phase=2)} makes them: {@code prompt +
 * chosen + EOT} and {@code prompt + rejected + EOT}, each tokenized, cut at and padded to {@code maxSeqLen} on the
 * right; batches stack all chosen rows, then all rejected rows ({@code DataCollatorReward}).
 */
public final class PairSamples implements Samples<PairBatch> {
    private final int[][] chosen, rejected;
    private final int maxSeqLen, padId;
    private final SkipReport skips;

    private PairSamples(int[][] chosen, int[][] rejected, int maxSeqLen, int padId, SkipReport skips) {
        this.chosen = chosen;
        this.rejected = rejected;
        this.maxSeqLen = maxSeqLen;
        this.padId = padId;
        this.skips = skips;
    }

    /** Tokenizes the rows (all of them: step 2 drops none). */
    public static PairSamples build(Rows<PreferenceRow> rows, TextEncoder encoder, int maxSeqLen) {
        Objects.requireNonNull(encoder, "encoder");
        if (maxSeqLen < 1) throw new IllegalArgumentException("maxSeqLen must be at least 1, got " + maxSeqLen);
        String eot = encoder.endOfConversationToken();
        List<String> c = new ArrayList<>(rows.size()), r = new ArrayList<>(rows.size());
        for (PreferenceRow row : rows) {
            c.add(row.promptAndChosen() + eot);
            r.add(row.promptAndRejected() + eot);
        }
        return new PairSamples(encoder.encode(c, maxSeqLen), encoder.encode(r, maxSeqLen), maxSeqLen,
                encoder.padId(), rows.skips());
    }

    @Override
    public int size() {
        return chosen.length;
    }

    /** Pair {@code i}'s chosen ids without padding. */
    public int[] chosen(int i) {
        return chosen[i].clone();
    }

    /** Pair {@code i}'s rejected ids without padding. */
    public int[] rejected(int i) {
        return rejected[i].clone();
    }

    public int maxSeqLen() {
        return maxSeqLen;
    }

    @Override
    public PairBatch batch(int[] indices) {
        int n = indices.length;
        int[][] seqs = new int[2 * n][];
        for (int i = 0; i < n; i++) {
            seqs[i] = chosen[indices[i]];
            seqs[n + i] = rejected[indices[i]];
        }
        int[][] padded = Batch.pad(seqs, maxSeqLen, padId, false);
        return new PairBatch(n, maxSeqLen, padded[0], padded[1]);
    }

    @Override
    public SkipReport skips() {
        return skips;
    }
}
