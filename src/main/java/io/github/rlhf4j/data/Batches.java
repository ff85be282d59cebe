package io.github.rlhf4j.data;

import java.util.Arrays;
import java.util.Objects;

/**
 * Batches of a step's samples, epoch after epoch, with a position that a checkpoint can save and {@link #seek}
 * restore, so that a resumed run sees exactly the batches an uninterrupted one would.
 *
 * <p>Each epoch visits every sample once: in order for evaluation, or shuffled for training with
 * {@code Shuffle.permutation(seed + epoch)} (low 32 bits). The last batch of an epoch may be smaller, as
 * DeepSpeed-Chat's data loaders keep it ({@code drop_last=False}). {@link #next()} rolls over into the next epoch
 * by itself; {@link #position()} tells which epoch the next batch belongs to.
 *
 * <pre>{@code
 * Batches<LmBatch> batches = new Batches<>(samples, 16, true, seed);
 * batches.seek(checkpoint.dataPosition());          // or start at (0, 0)
 * while (batches.position().epoch() < epochs) {
 *     LmBatch b = batches.next();
 *     ... train; save batches.position() with the checkpoint ...
 * }
 * }</pre>
 *
 * @param <B> the batch type
 */
public final class Batches<B> {
    /**
     * Where the next batch starts: the epoch, and how many samples of that epoch's order come before it.
     */
    public record Position(int epoch, int offset) {
        public Position {
            if (epoch < 0 || offset < 0) throw new IllegalArgumentException("position " + epoch + ", " + offset);
        }

        public static final Position START = new Position(0, 0);
    }

    private final Samples<B> samples;
    private final int batchSize;
    private final boolean shuffle;
    private final long seed;
    private int epoch, offset;
    private int[] order; // of `epoch`
    private int orderEpoch = -1;

    /**
     * @param batchSize samples a batch (the last of an epoch may have fewer)
     * @param shuffle a new seeded order each epoch (training), or file order (evaluation)
     */
    public Batches(Samples<B> samples, int batchSize, boolean shuffle, long seed) {
        this.samples = Objects.requireNonNull(samples, "samples");
        if (batchSize < 1) throw new IllegalArgumentException("batchSize must be at least 1, got " + batchSize);
        if (samples.size() == 0) throw new IllegalArgumentException("no samples to make batches of");
        this.batchSize = batchSize;
        this.shuffle = shuffle;
        this.seed = seed;
    }

    /** Batches in each epoch: {@code ceil(samples / batchSize)}. */
    public int batchesPerEpoch() {
        return (samples.size() + batchSize - 1) / batchSize;
    }

    /** The position of the batch {@link #next()} returns. */
    public Position position() {
        return new Position(epoch, offset);
    }

    /**
     * Continues from a saved position.
     *
     * @throws IllegalArgumentException if the offset is past the end of an epoch (the samples changed since)
     */
    public void seek(Position p) {
        Objects.requireNonNull(p, "position");
        if (p.offset() >= samples.size()) throw new IllegalArgumentException("position " + p + " is past the "
                + samples.size() + " samples of an epoch");
        epoch = p.epoch();
        offset = p.offset();
    }

    /** The next batch; after an epoch's last batch, the position moves to the start of the next epoch. */
    public B next() {
        int[] o = orderOf(epoch);
        int end = Math.min(o.length, offset + batchSize);
        B batch = samples.batch(Arrays.copyOfRange(o, offset, end));
        offset = end;
        if (offset == o.length) {
            epoch++;
            offset = 0;
        }
        return batch;
    }

    /** The order in which an epoch visits the samples. */
    public int[] order(int epoch) {
        return orderOf(epoch).clone();
    }

    private int[] orderOf(int epoch) {
        if (epoch != orderEpoch) {
            int n = samples.size();
            if (shuffle) {
                order = Shuffle.permutation((seed + epoch) & 0xFFFF_FFFFL, n);
            } else {
                order = new int[n];
                for (int i = 0; i < n; i++) order[i] = i;
            }
            orderEpoch = epoch;
        }
        return order;
    }

    public Samples<B> samples() {
        return samples;
    }
}
