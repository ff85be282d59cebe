package io.github.rlhf4j.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@link ParameterStore}: the flat layout (aligned offsets in declaration order, values and gradients as views of the
 * two flat buffers, gradients accumulating there, zeroGrad), initialisation from each parameter's {@link Init}
 * (distribution, constants, seeding), the decay ranges, frozen parameters, and the store's life cycle.
 */
class ParameterStoreTest {
    /** Odd sizes, so most parameters leave a gap before the next aligned offset. */
    static final class Odd extends Module {
        final Parameter a = parameter("a", Init.normal(0.02), 3, 5);
        final Parameter b = parameter("b", Init.zeros(), 70);
        final Parameter c = parameter("c", Init.ones(), 2, 2, 2);
        final Parameter d = parameter("d", Init.uniform(-1, 1), 64);
        final Parameter e = parameter("e", Init.normal(1.0), 1);
    }

    /** Large parameters, for the sample statistics of the initial values. */
    static final class Big extends Module {
        final Parameter n1 = parameter("n1", Init.normal(0.02), 256, 256);
        final Parameter n2 = parameter("n2", Init.normal(0.5), 100, 100);
        final Parameter n3 = parameter("n3", Init.normal(0.02), 256, 256);
        final Parameter u = parameter("u", Init.uniform(-0.3, 0.7), 100, 100);
        final Parameter z = parameter("z", Init.zeros(), 1000);
        final Parameter o = parameter("o", Init.ones(), 1000);
    }

    static final Device CPU = Device.cpu();

    private static long padded(long n) {
        return (n + ParameterStore.ALIGN - 1) / ParameterStore.ALIGN * ParameterStore.ALIGN;
    }

    @Test
    void everyParameterStartsAtAnAlignedOffsetInDeclarationOrder() {
        for (Module m : List.<Module>of(new Odd(), CausalLM.of(Gpt2Config.tiny(23, 16, 24, 2, 4)))) {
            List<String> declared = new ArrayList<>(m.namedParameters().keySet());
            try (ParameterStore store = ParameterStore.allocate(m, CPU, 1)) {
                List<ParameterStore.Entry> entries = store.entries();
                assertEquals(declared, entries.stream().map(ParameterStore.Entry::name).toList());
                long next = 0;
                for (ParameterStore.Entry e : entries) {
                    assertEquals(0, e.offset() % ParameterStore.ALIGN, e.name() + " offset " + e.offset());
                    assertEquals(next, e.offset(), e.name() + " follows the previous parameter's padded end");
                    assertEquals(e.parameter().numel(), e.numel());
                    next = e.offset() + padded(e.numel());
                }
                assertEquals(next, store.flatSize());
                assertEquals(m.parameterCount(), store.parameterCount());
                assertEquals(store.flatSize(), store.data().numel());
                assertEquals(store.flatSize(), store.grad().numel());
                assertArrayEquals(Tensor.flatShape(store.flatSize()), store.data().shape()); // 1-d below 2^31
                assertTrue(store.data().isContiguous() && store.grad().isContiguous());
            }
        }
    }

    /** Two parameters of 2^30 elements and a small one after them: a store past 2^31 elements. */
    static final class PastIntRange extends Module {
        final Parameter w1 = parameter("w1", Init.normal(0.02), 1 << 24, 64);
        final Parameter w2 = parameter("w2", Init.uniform(-1, 1), 1 << 24, 64);
        final Parameter tail = parameter("tail", Init.normal(0.5), 3, 5);
    }

    /**
     * A store of more than 2^31 - 1 elements (OPT-2.7B and up have one), for real: 2^31 + 64 slots in BF16, 4 GiB,
     * inference-only. Its flat buffer is kept in rows of 64; every parameter is a view at its offset past 2^31,
     * initialised from Philox at counters past 2^31; a flat range across the 2^31 mark reads both sides.
     */
    @Test
    void aStoreOfMoreThan2To31ElementsIsKeptInRowsAndReadsBackAtItsOffsets() throws Exception {
        long available = 0;
        for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/meminfo")))
            if (line.startsWith("MemAvailable:")) available = Long.parseLong(line.replaceAll("\\D", "")) * 1024;
        org.junit.jupiter.api.Assumptions.assumeTrue(available >= (10L << 30), "needs 10 GiB of free memory for a "
                + "4 GiB store, " + (available >> 20) + " MiB free");
        long seed = 11, big = 1L << 30;
        try (ParameterStore store = ParameterStore.allocate(new PastIntRange(), CPU, DType.BF16, seed, false);
             Scope s = Scope.open(); Autograd.NoGrad ignored = Autograd.noGrad()) {
            assertEquals((1L << 31) + 64, store.flatSize());
            assertEquals(2 * big + 15, store.parameterCount());
            assertArrayEquals(new int[] {(1 << 25) + 1, Tensor.FLAT_ROW}, store.data().shape());
            ParameterStore.Entry w2 = store.entries().get(1), tail = store.entries().get(2);
            assertEquals(big, w2.offset());
            assertEquals(1L << 31, tail.offset());
            // the tail's values are Philox's numbers at counters 2^31 .. 2^31 + 14, as a small tensor filled there
            Tensor expected = s.empty(DType.BF16, 3, 5).fillRandom(true, 0, 0.5, seed, 1L << 31);
            assertArrayEquals(expected.toFloatArray(), tail.parameter().value().toFloatArray());
            // w2's last row: counters 2^31 - 64 .. 2^31 - 1, uniform in [-1, 1)
            Tensor lastRow = s.empty(DType.BF16, 64).fillRandom(false, -1, 1, seed, (1L << 31) - 64);
            assertArrayEquals(lastRow.toFloatArray(), w2.parameter().value().select(0, (1 << 24) - 1).toFloatArray());
            // a flat range across the mark: w2's last row, then the tail and its zero padding
            float[] across = store.data().flatRange((1L << 31) - 64, (1L << 31) + 64).toFloatArray();
            float[] want = new float[128];
            System.arraycopy(lastRow.toFloatArray(), 0, want, 0, 64);
            System.arraycopy(expected.toFloatArray(), 0, want, 64, 15);
            assertArrayEquals(want, across);
            // and the whole buffer's first row is w1's first, from counter 0
            assertArrayEquals(s.empty(DType.BF16, 64).fillRandom(true, 0, 0.02, seed, 0).toFloatArray(),
                    store.data().flatRange(0, 64).toFloatArray());
        }
    }

    @Test
    void valuesAreViewsOfTheFlatBuffer() {
        Odd m = new Odd();
        try (ParameterStore store = ParameterStore.allocate(m, CPU, 1); Scope s = Scope.open()) {
            int n = (int) store.flatSize();
            double[] ramp = new double[n];
            for (int i = 0; i < n; i++) ramp[i] = i;
            try (Autograd.NoGrad ng = Autograd.noGrad()) {
                store.data().copyFrom(ramp); // write through the flat buffer ...
            }
            for (ParameterStore.Entry e : store.entries()) {
                Tensor v = e.parameter().value();
                assertArrayEquals(e.parameter().shape(), v.shape(), e.name());
                assertArrayEquals(Arrays.copyOfRange(ramp, (int) e.offset(), (int) (e.offset() + e.numel())),
                        v.toDoubleArray(), e.name() + " reads the flat buffer at its offset");
            }
            try (Autograd.NoGrad ng = Autograd.noGrad()) {
                m.b.value().fill(-7); // ... and through a parameter
            }
            double[] flat = store.data().toDoubleArray();
            ParameterStore.Entry b = store.entries().get(1);
            for (int i = 0; i < n; i++) {
                boolean inB = i >= b.offset() && i < b.offset() + b.numel();
                assertEquals(inB ? -7 : ramp[i], flat[i], "flat element " + i);
            }
        }
    }

    @Test
    void gradientsAreViewsOfTheFlatGradientAndAccumulate() {
        Odd m = new Odd();
        try (ParameterStore store = ParameterStore.allocate(m, CPU, DType.F64, 1); Scope s = Scope.open()) {
            Map<String, Parameter> params = m.namedParameters();
            List<Tensor> weights = new ArrayList<>();
            long seed = 100;
            for (Parameter p : params.values()) weights.add(Tensor.randn(DType.F64, seed++, 0, 1, p.shape()));
            double[] expected = new double[(int) store.flatSize()];
            for (int pass = 1; pass <= 2; pass++) {
                Tensor loss = null;
                int i = 0;
                for (Parameter p : params.values()) {
                    Tensor term = p.value().mul(weights.get(i++)).sum();
                    loss = loss == null ? term : loss.add(term);
                }
                loss.backward(); // d loss / d p = w, accumulated over the passes
                i = 0;
                for (ParameterStore.Entry e : store.entries()) {
                    double[] w = weights.get(i++).toDoubleArray();
                    for (int k = 0; k < w.length; k++) expected[(int) e.offset() + k] = pass * w[k];
                }
                assertArrayEquals(expected, store.grad().toDoubleArray(), 1e-12, "flat gradient after pass " + pass
                        + " (gaps stay zero)");
            }
            for (ParameterStore.Entry e : store.entries()) {
                Tensor g = e.parameter().value().grad();
                assertNotNull(g, e.name());
                assertArrayEquals(Arrays.copyOfRange(expected, (int) e.offset(), (int) (e.offset() + e.numel())),
                        g.toDoubleArray(), e.name() + ".grad() is its stretch of the flat gradient");
            }
            store.zeroGrad();
            assertEquals(0.0, maxAbs(store.grad().toDoubleArray()), "zeroGrad clears the flat gradient");
            for (ParameterStore.Entry e : store.entries())
                assertEquals(0.0, maxAbs(e.parameter().value().grad().toDoubleArray()), e.name() + " after zeroGrad");
        }
    }

    @Test
    void modelGradientsLandInTheFlatGradientAndZeroGradClearsThem() {
        CausalLM model = CausalLM.of(Gpt2Config.tiny(23, 16, 24, 2, 4));
        try (ParameterStore store = ParameterStore.allocate(model, CPU, 3); Scope s = Scope.open()) {
            Tensor ids = Tensor.ofInts(new int[] {1, 5, 7, 22, 3, 0, 9, 14}, 2, 4);
            Tensor loss = Functional.crossEntropy(model.forward(ids, null, null, null), ids, -100);
            loss.backward();
            double[] flat = store.grad().toDoubleArray();
            for (ParameterStore.Entry e : store.entries()) {
                double[] g = e.parameter().value().grad().toDoubleArray();
                assertTrue(maxAbs(g) > 0, e.name() + " got a gradient");
                assertArrayEquals(Arrays.copyOfRange(flat, (int) e.offset(), (int) (e.offset() + e.numel())), g,
                        e.name());
                for (long k = e.offset() + e.numel(); k < e.offset() + padded(e.numel()); k++)
                    assertEquals(0.0, flat[(int) k], "gap after " + e.name());
            }
            store.zeroGrad();
            assertEquals(0.0, maxAbs(store.grad().toDoubleArray()));
        }
    }

    @Test
    void normalAndUniformInitsHaveTheConfiguredDistribution() {
        for (DType dtype : List.of(DType.F32, DType.F64)) {
            Big m = new Big();
            try (ParameterStore store = ParameterStore.allocate(m, CPU, dtype, 2024)) {
                assertEquals(dtype, store.data().dtype());
                assertEquals(dtype, m.n1.value().dtype());
                checkNormal(m.n1, 0.02, dtype);
                checkNormal(m.n2, 0.5, dtype);
                checkNormal(m.n3, 0.02, dtype);
                double[] u = m.u.value().toDoubleArray();
                double mean = mean(u), std = std(u);
                assertTrue(Arrays.stream(u).min().orElseThrow() >= -0.3 && Arrays.stream(u).max().orElseThrow() < 0.7,
                        "uniform values lie in [low, high)");
                assertEquals(0.2, mean, 5 / Math.sqrt(12 * u.length), "uniform mean");
                assertEquals(1 / Math.sqrt(12), std, 0.03 / Math.sqrt(12), "uniform std");
                assertTrue(Arrays.stream(u).min().orElseThrow() < -0.29 && Arrays.stream(u).max().orElseThrow() > 0.69,
                        "uniform values fill the interval");
                for (double v : m.z.value().toDoubleArray()) assertEquals(0.0, v, "zeros");
                for (double v : m.o.value().toDoubleArray()) assertEquals(1.0, v, "ones");
                assertFalse(Arrays.equals(m.n1.value().toDoubleArray(), m.n3.value().toDoubleArray()),
                        "two parameters with the same init draw different numbers");
            }
        }
    }

    private static void checkNormal(Parameter p, double std, DType dtype) {
        double[] v = p.value().toDoubleArray();
        String what = p.name() + " (" + dtype + ")";
        assertEquals(0.0, mean(v), 5 * std / Math.sqrt(v.length), what + " mean");
        assertEquals(std, std(v), 0.03 * std, what + " std");
        long within = Arrays.stream(v).filter(x -> Math.abs(x) < std).count();
        // P(|x| < sigma) = erf(1/sqrt 2) = 0.6827 for a normal (0.577 for a uniform of the same std)
        assertEquals(0.6827, (double) within / v.length, 0.02, what + " fraction within one std");
    }

    @Test
    void sameSeedGivesSameWeightsAndAnotherSeedOthers() {
        double[] a = initial(CausalLM.of(Gpt2Config.tiny(23, 16, 24, 2, 4)), 7);
        double[] b = initial(CausalLM.of(Gpt2Config.tiny(23, 16, 24, 2, 4)), 7);
        double[] c = initial(CausalLM.of(Gpt2Config.tiny(23, 16, 24, 2, 4)), 8);
        assertArrayEquals(a, b, "same config and seed, same weights");
        int same = 0, random = 0;
        for (int i = 0; i < a.length; i++) {
            if (a[i] != 0 && a[i] != 1) random++; // skip gaps and constant inits
            if (a[i] != 0 && a[i] != 1 && a[i] == c[i]) same++;
        }
        assertTrue(random > 1000);
        assertEquals(0, same, "a different seed changes every random weight");
    }

    private static double[] initial(Module m, long seed) {
        try (ParameterStore store = ParameterStore.allocate(m, CPU, seed)) {
            return store.data().toDoubleArray();
        }
    }

    @Test
    void rangesSplitTheFlatBufferByDeepSpeedChatsNoDecayRule() {
        CausalLM model = CausalLM.of(Gpt2Config.tiny(23, 16, 24, 2, 4));
        try (ParameterStore store = ParameterStore.allocate(model, CPU, 1)) {
            List<ParameterStore.Range> ranges = store.ranges(ParameterStore::dsChatNoDecay);
            assertEquals(0, ranges.get(0).start());
            assertEquals(store.flatSize(), ranges.get(ranges.size() - 1).end());
            for (int i = 1; i < ranges.size(); i++) {
                assertEquals(ranges.get(i - 1).end(), ranges.get(i).start(), "ranges tile the buffer");
                assertTrue(ranges.get(i - 1).decay() != ranges.get(i).decay(), "adjacent ranges are merged");
            }
            for (ParameterStore.Entry e : store.entries()) {
                ParameterStore.Range r = rangeOf(ranges, e);
                assertNotNull(r, e.name() + " lies in one range");
                assertEquals(!ParameterStore.dsChatNoDecay(e.name()), r.decay(), e.name());
            }
            assertTrue(ranges.size() > 2, "GPT-2 alternates between decayed and undecayed runs");
        }
    }

    @Test
    void dsChatNoDecayMatchesItsSubstringList() {
        // DeepSpeed-Chat's get_optimizer_grouped_parameters: any of "bias", "layer_norm.weight", "layernorm.weight",
        // "norm.weight", "ln_f.weight" in the name. GPT-2's ln_1 / ln_2 weights match none, so DS-Chat decays them.
        for (String n : List.of("transformer.h.0.attn.c_attn.bias", "transformer.ln_f.weight", "transformer.ln_f.bias",
                "model.norm.weight", "model.layers.3.input_layernorm.weight", "model.decoder.final_layer_norm.weight",
                "transformer.h.1.ln_2.bias"))
            assertTrue(ParameterStore.dsChatNoDecay(n), n);
        for (String n : List.of("transformer.wte.weight", "transformer.h.0.attn.c_attn.weight",
                "transformer.h.0.ln_1.weight", "transformer.h.0.ln_2.weight", "model.layers.0.mlp.up_proj.weight"))
            assertFalse(ParameterStore.dsChatNoDecay(n), n);
    }

    private static ParameterStore.Range rangeOf(List<ParameterStore.Range> ranges, ParameterStore.Entry e) {
        for (ParameterStore.Range r : ranges)
            if (e.offset() >= r.start() && e.offset() + e.numel() <= r.end()) return r;
        return null;
    }

    @Test
    void frozenParametersGetNoGradientAndNoRange() {
        Odd m = new Odd();
        m.namedParameters();
        m.a.setFrozen(true); // frozen before the layout
        try (ParameterStore store = ParameterStore.allocate(m, CPU, DType.F64, 1); Scope s = Scope.open()) {
            m.d.setFrozen(true); // and after
            assertFalse(m.a.value().requiresGrad());
            assertFalse(m.d.value().requiresGrad());
            assertTrue(m.b.value().requiresGrad());
            Tensor loss = m.a.value().square().sum().add(m.b.value().add(1).square().sum())
                    .add(m.d.value().square().sum());
            loss.backward();
            double[] flat = store.grad().toDoubleArray();
            for (ParameterStore.Entry e : store.entries()) {
                double[] g = Arrays.copyOfRange(flat, (int) e.offset(), (int) (e.offset() + e.numel()));
                if (e.parameter().isFrozen()) assertEquals(0.0, maxAbs(g), e.name() + " is frozen");
                else if (e.name().equals("b")) assertTrue(maxAbs(g) > 0, "b trains");
            }
            List<ParameterStore.Range> ranges = store.ranges(n -> false);
            for (ParameterStore.Entry e : store.entries())
                assertEquals(!e.parameter().isFrozen(), rangeOf(ranges, e) != null, e.name() + " in a range");
            m.d.setFrozen(false);
            assertTrue(m.d.value().requiresGrad(), "unfreezing restores the gradient");
        }
    }

    @Test
    void storeRejectsIntegerDtypesAndSecondLayoutsAndReleasesOnClose() {
        Odd m = new Odd();
        assertThrows(IllegalArgumentException.class, () -> ParameterStore.allocate(m, CPU, DType.I32, 1));
        assertFalse(m.a.isAllocated());
        assertThrows(IllegalStateException.class, m.a::value, "no memory before the layout");
        ParameterStore store = ParameterStore.allocate(m, CPU, 1);
        assertTrue(m.a.isAllocated());
        assertThrows(IllegalStateException.class, () -> ParameterStore.allocate(m, CPU, 1),
                "a parameter belongs to one store");
        store.close();
        assertFalse(m.a.isAllocated());
        assertThrows(IllegalStateException.class, m.a::value);
    }

    private static double mean(double[] v) {
        return Arrays.stream(v).average().orElseThrow();
    }

    private static double std(double[] v) {
        double m = mean(v), s = 0;
        for (double x : v) s += (x - m) * (x - m);
        return Math.sqrt(s / (v.length - 1));
    }

    private static double maxAbs(double[] v) {
        double m = 0;
        for (double x : v) m = Math.max(m, Math.abs(x));
        return m;
    }
}
