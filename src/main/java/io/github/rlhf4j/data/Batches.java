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
    private final int rank, world;
    private int epoch, offset;
    private int[] order; // of `epoch`
    private int orderEpoch = -1;

    /**
     * @param batchSize samples a batch (the last of an epoch may have fewer)
     * @param shuffle a new seeded order each epoch (training), or file order (evaluation)
     */
    public Batches(Samples<B> samples, int batchSize, boolean shuffle, long seed) {
        this(samples, batchSize, shuffle, seed, 0, 1);
    }

    /**
     * Rank {@code rank}'s share of data-parallel batches over {@code world} ranks (torch's DistributedSampler with
     * the same seed on every rank): each step takes the next {@code batchSize x world} samples of the epoch's order,
     * and this rank gets its contiguous share. Every rank gets the same number of rows: the epoch's last, smaller
     * step is split evenly and its shares are filled up from the start of the epoch's order (as DistributedSampler
     * pads). Positions are global, so every rank saves and resumes the same one.
     */
    public Batches(Samples<B> samples, int batchSize, boolean shuffle, long seed, int rank, int world) {
        this.samples = Objects.requireNonNull(samples, "samples");
        if (batchSize < 1) throw new IllegalArgumentException("batchSize must be at least 1, got " + batchSize);
        if (samples.size() == 0) throw new IllegalArgumentException("no samples to make batches of");
        if (world < 1 || rank < 0 || rank >= world)
            throw new IllegalArgumentException("rank " + rank + " of a world of " + world);
        this.batchSize = batchSize;
        this.shuffle = shuffle;
        this.seed = seed;
        this.rank = rank;
        this.world = world;
    }

    /** Steps in each epoch: {@code ceil(samples / (batchSize x world))}. */
    public int batchesPerEpoch() {
        long global = (long) batchSize * world;
        return (int) ((samples.size() + global - 1) / global);
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
        int end = (int) Math.min(o.length, offset + (long) batchSize * world);
        B batch;
        if (world == 1) {
            batch = samples.batch(Arrays.copyOfRange(o, offset, end));
        } else {
            int share = (end - offset + world - 1) / world;
            int[] mine = new int[share];
            for (int k = 0; k < share; k++) mine[k] = o[(offset + rank * share + k) % o.length];
            batch = samples.batch(mine);
        }
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
