package io.github.rlhf4j.tensor;

import io.github.rlhf4j.runtime.DType;
import java.util.List;
import java.util.Random;
import java.util.function.Function;

/**
 * Gradient checking by central finite differences, as torch.autograd.gradcheck: for a function of F64 inputs, the
 * scalar L = sum(w * f(x)) with fixed random weights w is differentiated by backward and by
 * (L(x + h e_j) - L(x - h e_j)) / 2h, element by element. In float64 with h = 1e-6 the two agree to about 1e-9
 * relative for smooth functions, so any error in a gradient formula shows up by orders of magnitude.
 */
public final class GradCheck {
    private GradCheck() {}

    /**
     * @param maxAbsError the largest |analytic - numeric| over the checked elements
     * @param maxError the largest |analytic - numeric| / (atol + rtol |numeric|): at most 1 means within tolerance
     * @param checked how many elements were compared
     * @param worst where the largest {@code maxError} was, for the failure message
     */
    public record Result(double maxAbsError, double maxError, int checked, String worst) {
        public boolean passed() {
            return maxError <= 1.0;
        }
    }

    /**
     * Checks the gradient of {@code f} with respect to each input (contiguous F64 leaves that require grad), on at
     * most {@code maxPerInput} elements of each (all if fewer; else a random subset from {@code seed}).
     */
    public static Result check(Function<List<Tensor>, Tensor> f, List<Tensor> inputs, double h, double atol,
                               double rtol, int maxPerInput, long seed) {
        for (Tensor t : inputs) {
            if (t.dtype() != DType.F64) throw new IllegalArgumentException("gradcheck: " + t.describe() + " is not f64");
            if (!t.requiresGrad()) throw new IllegalArgumentException("gradcheck: " + t.describe() + " does not require grad");
            if (!t.isContiguous()) throw new IllegalArgumentException("gradcheck: " + t.describe() + " is not contiguous");
        }
        Tensor weights;
        double[][] analytic = new double[inputs.size()][];
        Scope owner = Scope.current();
        try (Scope s = Scope.open(inputs.getFirst().device())) {
            for (Tensor t : inputs)
                if (t.grad() != null) t.grad().fill(0); // keeps a parameter's view of its model's flat gradient
            Tensor y = f.apply(inputs);
            weights = owner.empty(y.dtype(), y.shape());
            weights.fillRandom(true, 0, 1, seed, 0);
            y.mul(weights).sum().backward();
            for (int i = 0; i < inputs.size(); i++) {
                Tensor g = inputs.get(i).grad();
                analytic[i] = g == null ? new double[(int) inputs.get(i).numel()] : g.toDoubleArray();
            }
        }
        Random rnd = new Random(seed);
        double maxAbs = 0, maxErr = 0;
        int checked = 0;
        String worst = "";
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (int i = 0; i < inputs.size(); i++) {
                Tensor x = inputs.get(i);
                double[] values = x.toDoubleArray();
                int n = values.length;
                int[] idx = pick(n, maxPerInput, rnd);
                for (int j : idx) {
                    double orig = values[j];
                    values[j] = orig + h;
                    x.copyFrom(values);
                    double plus = loss(f, inputs, weights);
                    values[j] = orig - h;
                    x.copyFrom(values);
                    double minus = loss(f, inputs, weights);
                    values[j] = orig;
                    x.copyFrom(values);
                    double numeric = (plus - minus) / (2 * h);
                    double abs = Math.abs(analytic[i][j] - numeric);
                    double err = abs / (atol + rtol * Math.abs(numeric));
                    if (!(err <= maxErr)) { // NaN counts as worst
                        maxErr = Double.isNaN(err) ? Double.POSITIVE_INFINITY : err;
                        worst = x.describe() + " element " + j + ": backward " + analytic[i][j] + ", central "
                                + "difference " + numeric;
                    }
                    maxAbs = Math.max(maxAbs, abs);
                    checked++;
                }
            }
        }
        return new Result(maxAbs, maxErr, checked, worst);
    }

    private static double loss(Function<List<Tensor>, Tensor> f, List<Tensor> inputs, Tensor weights) {
        try (Scope s = Scope.open(weights.device())) {
            return f.apply(inputs).mul(weights).sum().item();
        }
    }

    private static int[] pick(int n, int max, Random rnd) {
        if (n <= max) {
            int[] all = new int[n];
            for (int i = 0; i < n; i++) all[i] = i;
            return all;
        }
        return rnd.ints(0, n).distinct().limit(max).toArray();
    }
}
