package io.github.rlhf4j.data;

import java.util.Arrays;
import java.util.Objects;

/**
 * A {@code --data-split} such as {@code 2,4,4}: relative sizes of the parts each dataset is cut into, one per step.
 * {@link #boundaries(int)} is DeepSpeed-Chat's arithmetic in {@code get_raw_dataset_split_index}: the weights are
 * normalised, each part's size is {@code round(weight * rows)} with Python's rounding (half to even), the boundaries
 * are their running sums, and then every boundary but the first is shifted by the same amount so that the last one
 * is the row count. (So with 7 rows and {@code 1,1,1} the parts have 3, 2 and 2 rows, and with 1 row and
 * {@code 1,1,1} the first part has it.)
 */
public final class SplitSpec {
    private final String text;
    private final double[] weights;

    private SplitSpec(String text, double[] weights) {
        this.text = text;
        this.weights = weights;
    }

    /** DeepSpeed-Chat's default, {@code 2,4,4}: 20% of the rows for step 1, 40% for step 2, 40% for step 3. */
    public static SplitSpec dsChatDefault() {
        return parse("2,4,4");
    }

    /**
     * Parses comma-separated non-negative numbers with a positive sum.
     *
     * @throws IllegalArgumentException naming the part at fault
     */
    public static SplitSpec parse(String text) {
        Objects.requireNonNull(text, "text");
        String t = text.replace(" ", "");
        String[] parts = t.split(",", -1);
        double[] w = new double[parts.length];
        double sum = 0;
        for (int i = 0; i < parts.length; i++) {
            try {
                w[i] = Double.parseDouble(parts[i]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("data split '" + text + "': part " + (i + 1) + " ('" + parts[i]
                        + "') is not a number");
            }
            if (!(w[i] >= 0) || Double.isInfinite(w[i]))
                throw new IllegalArgumentException("data split '" + text + "': part " + (i + 1) + " must be a"
                        + " finite number, 0 or more, got " + parts[i]);
            sum += w[i];
        }
        if (!(sum > 0)) throw new IllegalArgumentException("data split '" + text + "': the parts add up to 0");
        return new SplitSpec(t, w);
    }

    /** The split as written (spaces removed): the form that names the cached index files. */
    public String text() {
        return text;
    }

    /** How many parts. */
    public int parts() {
        return weights.length;
    }

    /**
     * Where each part starts in a shuffled list of {@code rows} rows: {@code parts() + 1} numbers from 0 to
     * {@code rows}; part {@code i} is {@code [b[i], b[i + 1])}.
     *
     * @throws IllegalArgumentException where DeepSpeed-Chat's arithmetic gives a boundary outside {@code [0, rows]}
     *     or out of order (possible only with many tiny parts), where its slicing would wrap around
     */
    public int[] boundaries(int rows) {
        if (rows < 0) throw new IllegalArgumentException("rows must not be negative, got " + rows);
        double sum = 0;
        for (double w : weights) sum += w;
        long[] b = new long[weights.length + 1];
        for (int i = 0; i < weights.length; i++)
            b[i + 1] = b[i] + (long) Math.rint(weights[i] / sum * (double) rows); // Python's round(): half to even
        long diff = b[weights.length] - rows;
        for (int i = 1; i < b.length; i++) b[i] -= diff;
        int[] out = new int[b.length];
        for (int i = 0; i < b.length; i++) {
            if (b[i] < 0 || b[i] > rows || (i > 0 && b[i] < b[i - 1]))
                throw new IllegalArgumentException("data split '" + text + "' cannot cut " + rows + " rows: its"
                        + " boundaries come out as " + Arrays.toString(b));
            out[i] = (int) b[i];
        }
        return out;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SplitSpec s && Arrays.equals(weights, s.weights);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(weights);
    }

    @Override
    public String toString() {
        return text;
    }
}
