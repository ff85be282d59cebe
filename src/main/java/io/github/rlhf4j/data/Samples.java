package io.github.rlhf4j.data;

import java.util.Arrays;
import java.util.Iterator;
import java.util.NoSuchElementException;

/**
 * Tokenized samples of one step, ready to be cut into fixed-shape batches: {@link Batches} for training (epochs,
 * shuffling, a resumable position), {@link #inOrder} for one pass of evaluation.
 *
 * @param <B> the batch type: {@link LmBatch}, {@link PairBatch} or {@link PromptBatch}
 */
public interface Samples<B> {
    /** The number of samples. */
    int size();

    /** The samples at these indices, in this order, as one batch. */
    B batch(int[] indices);

    /** The rows left out of these samples (bad rows, and in step 3 over-long prompts), with positions. */
    SkipReport skips();

    /**
     * One pass over the samples in order, {@code batchSize} at a time (the last batch may be smaller), as
     * DeepSpeed-Chat's evaluation loaders go: {@code for (LmBatch b : samples.inOrder(16)) ...}.
     */
    default Iterable<B> inOrder(int batchSize) {
        if (batchSize < 1) throw new IllegalArgumentException("batchSize must be at least 1, got " + batchSize);
        return () -> new Iterator<>() {
            private int next;

            @Override
            public boolean hasNext() {
                return next < size();
            }

            @Override
            public B next() {
                if (!hasNext()) throw new NoSuchElementException();
                int end = Math.min(size(), next + batchSize);
                int[] idx = new int[end - next];
                Arrays.setAll(idx, i -> next + i);
                next = end;
                return batch(idx);
            }
        };
    }
}
