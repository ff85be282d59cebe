package io.github.rlhf4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Epochs, shuffling and resuming of Batches, on samples that are their own indices. */
class BatchesTest {
    /** Sample i is the number i; a batch is the indices it was given. */
    record Numbers(int size) implements Samples<int[]> {
        @Override
        public int[] batch(int[] indices) {
            return indices.clone();
        }

        @Override
        public SkipReport skips() {
            return new SkipReport();
        }
    }

    @Test
    void eachEpochVisitsEverySampleOnceWithASmallerLastBatch() {
        Batches<int[]> b = new Batches<>(new Numbers(10), 4, true, 7);
        assertEquals(3, b.batchesPerEpoch());
        for (int epoch = 0; epoch < 3; epoch++) {
            List<Integer> seen = new ArrayList<>();
            int[] sizes = new int[3];
            for (int i = 0; i < 3; i++) {
                assertEquals(epoch, b.position().epoch());
                int[] batch = b.next();
                sizes[i] = batch.length;
                for (int x : batch) seen.add(x);
            }
            assertArrayEquals(new int[] {4, 4, 2}, sizes);
            assertEquals(List.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), seen.stream().sorted().toList());
            assertEquals(new Batches.Position(epoch + 1, 0), b.position());
        }
    }

    @Test
    void shuffledEpochsDifferAndFollowTheSeedWhileEvalKeepsFileOrder() {
        Batches<int[]> a = new Batches<>(new Numbers(50), 50, true, 7), same = new Batches<>(new Numbers(50), 50, true, 7),
                other = new Batches<>(new Numbers(50), 50, true, 8);
        int[] e0 = a.next(), e1 = a.next();
        assertFalse(Arrays.equals(e0, e1));
        assertArrayEquals(e0, same.next());
        assertFalse(Arrays.equals(e0, other.next()));
        assertArrayEquals(Shuffle.permutation(8, 50), e1, "epoch 1 of seed 7 is the permutation of seed 8");
        Batches<int[]> eval = new Batches<>(new Numbers(5), 2, false, 7);
        assertArrayEquals(new int[] {0, 1}, eval.next());
        assertArrayEquals(new int[] {2, 3}, eval.next());
        assertArrayEquals(new int[] {4}, eval.next());
        assertArrayEquals(new int[] {0, 1}, eval.next());
    }

    @Test
    void resumingFromASavedPositionGivesTheSameBatches() {
        Batches<int[]> run = new Batches<>(new Numbers(23), 5, true, 1234);
        List<int[]> all = new ArrayList<>();
        List<Batches.Position> positions = new ArrayList<>();
        for (int i = 0; i < 17; i++) {
            positions.add(run.position());
            all.add(run.next());
        }
        for (int k : new int[] {0, 3, 4, 5, 11, 16}) {
            Batches<int[]> resumed = new Batches<>(new Numbers(23), 5, true, 1234);
            resumed.seek(positions.get(k));
            for (int i = k; i < all.size(); i++) assertArrayEquals(all.get(i), resumed.next(), "batch " + i + " after k=" + k);
        }
    }

    @Test
    void inOrderIsOnePassInFileOrder() {
        List<int[]> got = new ArrayList<>();
        for (int[] b : new Numbers(7).inOrder(3)) got.add(b);
        assertEquals(3, got.size());
        assertArrayEquals(new int[] {0, 1, 2}, got.get(0));
        assertArrayEquals(new int[] {3, 4, 5}, got.get(1));
        assertArrayEquals(new int[] {6}, got.get(2));
        assertFalse(new Numbers(0).inOrder(3).iterator().hasNext());
    }

    @Test
    void badArgumentsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new Batches<>(new Numbers(0), 1, true, 1));
        assertThrows(IllegalArgumentException.class, () -> new Batches<>(new Numbers(3), 0, true, 1));
        Batches<int[]> b = new Batches<>(new Numbers(3), 2, true, 1);
        assertThrows(IllegalArgumentException.class, () -> b.seek(new Batches.Position(0, 3)));
        assertThrows(IllegalArgumentException.class, () -> new Batches.Position(-1, 0));
    }
}
