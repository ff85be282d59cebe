package io.github.rlhf4j.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@link Module}: full dotted Hugging Face style names in torch's named_parameters order (a module's own parameters,
 * then each child's in declaration order, lists as {@code name.i}), duplicate names refused, parameter counts, and
 * train/eval mode reaching every descendant.
 */
class ModuleTest {
    /** transformers-like nesting: an embedding, a list of blocks, a final norm, declared in that order. */
    static final class Block extends Module {
        final LayerNorm ln1 = module("ln_1", new LayerNorm(4, 1e-5));
        final Attn attn = module("attn", new Attn());
        final Linear fc = module("fc", new Linear(4, 8, true, 0.02));
    }

    static final class Attn extends Module {
        final Conv1D cAttn = module("c_attn", new Conv1D(4, 12, 0.02));
        final Parameter scale = parameter("scale", Init.ones(), 1);
    }

    static final class Model extends Module {
        final Embedding wte = module("wte", new Embedding(10, 4, 0.02));
        final List<Block> h = modules("h", List.of(new Block(), new Block()));
        // declared after the children, listed before them, as torch lists a module's own parameters first
        final Parameter own = parameter("own", Init.zeros(), 3);
        final LayerNorm lnF = module("ln_f", new LayerNorm(4, 1e-5));
    }

    @Test
    void namesAreDottedAndInTorchNamedParametersOrder() {
        List<String> names = new ArrayList<>(new Model().namedParameters().keySet());
        List<String> expected = new ArrayList<>(List.of("own", "wte.weight"));
        for (int i = 0; i < 2; i++)
            for (String n : List.of("ln_1.weight", "ln_1.bias", "attn.scale", "attn.c_attn.weight", "attn.c_attn.bias",
                    "fc.weight", "fc.bias"))
                expected.add("h." + i + "." + n);
        expected.addAll(List.of("ln_f.weight", "ln_f.bias"));
        assertEquals(expected, names);
    }

    @Test
    void parametersKnowTheirFullNamesAndShapes() {
        Model m = new Model();
        Map<String, Parameter> params = m.namedParameters();
        try (ParameterStore store = ParameterStore.allocate(m, io.github.rlhf4j.runtime.Device.cpu(), 1)) {
            m.h.get(1).namedParameters(); // asking a submodule must not rename anything
            for (Map.Entry<String, Parameter> e : params.entrySet()) assertEquals(e.getKey(), e.getValue().name());
        }
        assertSame(m.h.get(1).attn.cAttn.weight, params.get("h.1.attn.c_attn.weight"));
        assertEquals(List.of(4, 12), toList(params.get("h.1.attn.c_attn.weight").shape()));
        assertEquals(List.of(8, 4), toList(params.get("h.0.fc.weight").shape()), "Linear stores [out, in]");
        assertEquals(List.of(10, 4), toList(params.get("wte.weight").shape()));
    }

    @Test
    void parameterCountSumsEveryParameter() {
        Model m = new Model();
        long n = 0;
        for (Parameter p : m.namedParameters().values()) {
            long k = 1;
            for (int d : p.shape()) k *= d;
            assertEquals(k, p.numel());
            n += k;
        }
        assertEquals(n, m.parameterCount());
        assertEquals(3 + 40 + 2 * (4 + 4 + 1 + 48 + 12 + 32 + 8) + 8, m.parameterCount());
    }

    @Test
    void duplicateNamesAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> new Module() {
            final Parameter a = parameter("w", Init.zeros(), 2);
            final Parameter b = parameter("w", Init.zeros(), 2);
        });
        assertThrows(IllegalArgumentException.class, () -> new Module() {
            final Linear a = module("proj", new Linear(2, 2, false, 0.02));
            final Linear b = module("proj", new Linear(2, 2, false, 0.02));
        });
        assertThrows(IllegalArgumentException.class, () -> new Module() {
            final Parameter a = parameter("x", Init.zeros(), 2);
            final Linear b = module("x", new Linear(2, 2, false, 0.02));
        });
        assertThrows(IllegalArgumentException.class, () -> new Module() {
            final List<Linear> a = modules("h", List.of(new Linear(2, 2, false, 0.02)));
            final Linear b = module("h.0", new Linear(2, 2, false, 0.02));
        });
    }

    @Test
    void moduleListIsNamedByIndexAndUnmodifiable() {
        Model m = new Model();
        assertEquals(2, m.h.size());
        assertThrows(UnsupportedOperationException.class, () -> m.h.add(new Block()));
        assertTrue(m.namedParameters().containsKey("h.1.fc.bias"));
        assertFalse(m.namedParameters().containsKey("h.2.fc.bias"));
    }

    @Test
    void trainAndEvalModeReachEveryDescendant() {
        Model m = new Model();
        assertTrue(m.isTraining() && m.h.get(1).attn.isTraining(), "modules start in training mode");
        m.train(false);
        for (Module x : List.of(m, m.wte, m.lnF, m.h.get(0), m.h.get(1), m.h.get(1).attn, m.h.get(1).attn.cAttn,
                m.h.get(0).fc))
            assertFalse(x.isTraining(), x.getClass().getSimpleName());
        m.h.get(0).train(true);
        assertTrue(m.h.get(0).attn.isTraining());
        assertFalse(m.h.get(1).attn.isTraining(), "a subtree's mode leaves its siblings alone");
        m.train(true);
        assertTrue(m.h.get(1).attn.cAttn.isTraining());
    }

    private static List<Integer> toList(int[] a) {
        List<Integer> l = new ArrayList<>();
        for (int v : a) l.add(v);
        return l;
    }
}
