package io.github.rlhf4j.testing;

import static org.junit.jupiter.api.Assertions.fail;

/** Elementwise closeness with a message that names the worst element. */
public final class Assertions {
    private Assertions() {}

    /** |actual - expected| <= atol + rtol |expected| for every element. */
    public static void assertClose(double[] expected, double[] actual, double atol, double rtol, String what) {
        if (expected.length != actual.length)
            fail(what + ": " + actual.length + " values, expected " + expected.length);
        double worst = 0;
        int at = -1;
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(actual[i] - expected[i]) / (atol + rtol * Math.abs(expected[i]));
            if (Double.isNaN(err)) err = Double.POSITIVE_INFINITY;
            if (err > worst) {
                worst = err;
                at = i;
            }
        }
        if (worst > 1.0)
            fail(String.format("%s: element %d is %.17g, expected %.17g (|diff| %.3g > %.1g + %.1g*|expected|)", what,
                    at, actual[at], expected[at], Math.abs(actual[at] - expected[at]), atol, rtol));
    }

    public static double maxAbs(double[] a) {
        double m = 0;
        for (double v : a) m = Math.max(m, Math.abs(v));
        return m;
    }
}
