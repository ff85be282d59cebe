package io.github.rlhf4j.cli;

import io.github.rlhf4j.Rlhf4j;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.runtime.Backend;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.NativeLoader;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.GradCheck;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code rlhf4j selftest}: which backend loaded and what it dispatches to, then real work on it: a GEMM against a
 * Java reference, a tiny GPT-2's gradients against central differences in float64, and a timed training step.
 */
@Command(name = "selftest", mixinStandardHelpOptions = true,
        description = {"Print the backend rlhf4j loaded and the CPU features it dispatches to, then check it: a GEMM",
                "against a plain Java product, a tiny GPT-2's gradients against central differences (float64), and",
                "a timed forward/backward/AdamW step. Exits 1 if any check fails."})
final class SelfTest implements Callable<Integer> {
    @Option(names = "--device", defaultValue = "cpu", description = "Device to test: cpu or cuda:N (default: ${DEFAULT-VALUE}).")
    String device;

    @Option(names = "--threads", defaultValue = "0", description = "Worker threads; 0 = the backend's default.")
    int threads;

    private final PrintStream out = System.out;
    private boolean ok = true;

    @Override
    public Integer call() {
        out.println("rlhf4j " + Rlhf4j.version() + " on Java " + System.getProperty("java.version") + " ("
                + System.getProperty("java.vendor") + "), " + System.getProperty("os.name") + " "
                + System.getProperty("os.arch"));
        Backend cpu = Backend.cpu();
        out.println("backend: " + cpu.name() + " (" + NativeLoader.find(Backend.CPU).map(Object::toString).orElse("?") + ")");
        out.println("  dispatch: " + cpu.features());
        out.println("  cuda: " + Backend.cuda().map(b -> b.deviceCount() + " device(s): " + b.features())
                .orElse("not in this build (librlhf4j_cuda.so is built where nvcc is installed)"));
        Device dev = Device.parse(device);
        if (threads > 0) dev.setNumThreads(threads);
        dev.pool().trim(); // the baseline counts no cached blocks, as the final reading will not
        long baseline = dev.memory().inUse();
        out.println("checks on " + dev + ":");
        gemm(dev);
        gradients(dev);
        trainingStep(dev);
        dev.pool().trim();
        long leaked = dev.memory().inUse() - baseline;
        report("native memory back to its starting level", leaked == 0, leaked + " bytes still allocated");
        out.println(ok ? "selftest passed" : "selftest FAILED");
        return ok ? 0 : 1;
    }

    private void report(String what, boolean pass, String detail) {
        ok &= pass;
        out.printf("  [%s] %s: %s%n", pass ? "ok" : "FAIL", what, detail);
    }

    private void gemm(Device dev) {
        int m = 67, k = 129, n = 45;
        try (Scope s = Scope.open(dev)) {
            Tensor a = Tensor.randn(DType.F32, 1, 0, 1, m, k), b = Tensor.randn(DType.F32, 2, 0, 1, k, n);
            float[] av = a.toFloatArray(), bv = b.toFloatArray(), cv = a.matmul(b).toFloatArray();
            double maxRel = 0;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double ref = 0, mag = 0;
                    for (int p = 0; p < k; p++) {
                        ref += (double) av[i * k + p] * bv[p * n + j];
                        mag += Math.abs((double) av[i * k + p] * bv[p * n + j]);
                    }
                    maxRel = Math.max(maxRel, Math.abs(cv[i * n + j] - ref) / mag);
                }
            report("gemm " + m + "x" + k + " . " + k + "x" + n + " vs Java (f32)", maxRel < 1e-5,
                    String.format("max error %.2e of the sum of |terms|", maxRel));
        }
    }

    private static final Gpt2Config TINY = Gpt2Config.tiny(23, 16, 16, 2, 2);

    private void gradients(Device dev) {
        CausalLM model = CausalLM.of(TINY);
        try (ParameterStore store = ParameterStore.allocate(model, dev, DType.F64, 7);
             Scope s = Scope.open(dev)) {
            Tensor ids = Tensor.ofInts(new int[] {3, 17, 5, 22, 9, 1, 0, 14, 8, 11, 2, 19}, 2, 6);
            Tensor targets = Tensor.ofInts(new int[] {17, 5, 22, 9, 1, -100, 14, 8, 11, 2, 19, 4}, 2, 6);
            Tensor mask = Tensor.ofInts(new int[] {1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1}, 2, 6);
            List<Tensor> params = new ArrayList<>();
            for (ParameterStore.Entry e : store.entries()) params.add(e.parameter().value());
            long t0 = System.nanoTime();
            GradCheck.Result r = GradCheck.check(in -> Functional.crossEntropy(model.forward(ids, mask, null, null), targets, -100),
                    params, 1e-6, 1e-9, 1e-6, 3, 11);
            report("tiny GPT-2 gradients vs central differences (f64, " + r.checked() + " elements of "
                    + params.size() + " tensors)", r.passed(), String.format("max |error| %.2e%s (%.0f ms)",
                    r.maxAbsError(), r.passed() ? "" : "; worst " + r.worst(), (System.nanoTime() - t0) / 1e6));
        }
    }

    private void trainingStep(Device dev) {
        Gpt2Config cfg = Gpt2Config.tiny(512, 128, 256, 4, 4);
        CausalLM model = CausalLM.of(cfg);
        int b = 4, t = 128;
        try (ParameterStore store = ParameterStore.allocate(model, dev, 1);
             AdamW opt = AdamW.forStore(store, AdamW.Config.dsChat(1e-3, 0.0))) {
            double first = Double.NaN, last = Double.NaN;
            long best = Long.MAX_VALUE;
            for (int step = 0; step < 6; step++) {
                try (Scope s = Scope.open(dev)) {
                    Tensor ids = Tensor.ofInts(pattern(b, t, cfg.vocabSize(), 0), b, t);
                    Tensor targets = Tensor.ofInts(pattern(b, t, cfg.vocabSize(), 1), b, t);
                    long t0 = System.nanoTime();
                    store.zeroGrad();
                    Tensor loss = Functional.crossEntropy(model.forward(ids, null, null, null), targets, -100);
                    loss.backward();
                    opt.step();
                    best = Math.min(best, System.nanoTime() - t0);
                    double v = loss.item();
                    if (step == 0) first = v;
                    last = v;
                }
            }
            report(String.format("train step, GPT-2 %.1fM params, batch %dx%d (f32)", model.parameterCount() / 1e6, b, t),
                    last < first && Double.isFinite(last), String.format("%.0f ms/step, %.0f tokens/s; loss %.3f -> %.3f",
                            best / 1e6, b * t / (best / 1e9), first, last));
        }
    }

    /** A learnable stream: token i is (row + i * 7) mod vocab, shifted by one for the targets. */
    private static int[] pattern(int b, int t, int vocab, int shift) {
        int[] v = new int[b * t];
        for (int r = 0; r < b; r++)
            for (int i = 0; i < t; i++) v[r * t + i] = (r * 31 + (i + shift) * 7) % vocab;
        return v;
    }
}
