package io.github.rlhf4j.rlhf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import io.github.rlhf4j.dist.Zero;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.nn.Lora;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link OptimizerPartitions.SingleProcess}: the single-process offsets it gives a ZeRO layout's elements are where
 * one process's store (allocated for real, in the default layout) keeps the same parameters, and the groups it
 * derives are that store's AdamW groups, with frozen LoRA base weights (which split groups) included.
 */
class OptimizerPartitionsTest {
    private static final String CONFIG = """
            {"model_type": "gpt2", "vocab_size": 40, "n_positions": 8, "n_embd": 24, "n_layer": 3, "n_head": 2}""";

    private static CausalLM model(boolean loraOnly) {
        CausalLM m = CausalLM.of(Gpt2Config.fromJson(ConfigJson.parse("config", CONFIG)));
        if (loraOnly) new Lora.Config(2, "h.", true).applyTo(m);
        return m;
    }

    @ParameterizedTest(name = "only LoRA trains: {0}")
    @ValueSource(booleans = {false, true})
    void zeroLayoutsMapOntoTheSingleProcessLayout(boolean loraOnly) {
        CausalLM a = model(loraOnly), b = model(loraOnly);
        try (ParameterStore one = ParameterStore.allocate(a, Device.cpu(), DType.F32, 1, true,
                ParameterStore.Layout.DEFAULT);
             ParameterStore zero = ParameterStore.allocate(b, Device.cpu(), DType.F32, 1, true, Zero.layout(4, 3))) {
            assertNotEquals(one.flatSize(), zero.flatSize(), "the ZeRO layout pads between layer groups");
            OptimizerPartitions.SingleProcess sp = new OptimizerPartitions.SingleProcess(zero);
            for (int i = 0; i < zero.entries().size(); i++) {
                ParameterStore.Entry z = zero.entries().get(i), o = one.entries().get(i);
                assertEquals(o.name(), z.name());
                assertEquals(o.offset(), sp.toSingle(z.offset()), z.name());
                assertEquals(o.offset() + o.numel() - 1, sp.toSingle(z.offset() + z.numel() - 1), z.name());
            }
            List<long[]> expected = new ArrayList<>();
            for (ParameterStore.Range r : AdamW.dsChatRanges(one)) expected.add(new long[] {r.start(), r.end()});
            assertEquals(render(expected), render(sp.groups()));
            assertEquals(render(expected), render(new OptimizerPartitions.SingleProcess(one).groups()));
        }
    }

    private static String render(List<long[]> groups) {
        StringBuilder sb = new StringBuilder();
        for (long[] g : groups) sb.append('[').append(g[0]).append(", ").append(g[1]).append(") ");
        return sb.toString();
    }
}
