package io.github.rlhf4j.data;

import java.util.Arrays;

/** Shape checks and padding shared by the batch records. */
final class Batch {
    private Batch() {}

    static void check(int rows, int columns, int[] ids, int[] mask) {
        if (rows < 0 || columns < 1) throw new IllegalArgumentException("shape " + rows + "x" + columns);
        if (ids.length != rows * columns || mask.length != ids.length)
            throw new IllegalArgumentException("a " + rows + "x" + columns + " batch with " + ids.length + " ids and "
                    + mask.length + " mask values");
    }

    /** Sequences padded to {@code columns} with {@code pad}, on the right or left: {ids, mask}. */
    static int[][] pad(int[][] seqs, int columns, int pad, boolean left) {
        int[] ids = new int[seqs.length * columns], mask = new int[ids.length];
        Arrays.fill(ids, pad);
        for (int r = 0; r < seqs.length; r++) {
            int[] s = seqs[r];
            if (s.length > columns) throw new IllegalStateException("a sequence of " + s.length + " tokens in a "
                    + columns + "-column batch");
            int at = r * columns + (left ? columns - s.length : 0);
            System.arraycopy(s, 0, ids, at, s.length);
            Arrays.fill(mask, at, at + s.length, 1);
        }
        return new int[][] {ids, mask};
    }
}
