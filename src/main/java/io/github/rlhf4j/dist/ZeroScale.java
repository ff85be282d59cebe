package io.github.rlhf4j.dist;

import io.github.rlhf4j.bench.OptPresets;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ModelConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * ZeRO on paper: for a model on N GPUs, what each stage keeps per GPU and what a training step moves per GPU, from
 * the partitioner's own plan ({@link ZeroPlan}, the model's real layer groups, nothing allocated), against the
 * link speeds and the compute floor, so a user sees which stage and how many GPUs a model needs.
 *
 * <p>Assumptions, stated in the table's header: bf16 weights and gradients (2 bytes each) with fp32 master weights
 * and AdamW moments (12 bytes per parameter), as DeepSpeed's mixed precision keeps them; collectives in bf16 over a
 * ring, each GPU sending (N - 1) / N of the paper's volume; NVLink at 900 GB/s per H100 within a node, InfiniBand at
 * 400 Gb/s (50 GB/s) per GPU between nodes (a ring spanning nodes runs at the slower link); the compute floor of one
 * step: 6 x parameters x tokens per GPU at 798 TFLOP/s (bf16 dense). Activations, the KV cache and the frozen
 * models of step 3 come on top of the model states shown.
 */
public final class ZeroScale {
    public static final double NVLINK_BYTES_PER_S = 900e9, IB_BYTES_PER_S = 400e9 / 8, BF16_FLOPS = 798e12;
    public static final long GPU_BYTES = 80L << 30;

    /** One row: a model on {@code gpus} GPUs ({@code perNode} per node) at a ZeRO stage. */
    public record Row(String model, long parameters, int gpus, int perNode, int stage, ZeroPlan.Memory memory,
                      long bytesSentPerGpu, double commSeconds, double computeSeconds) {
        public boolean fits() {
            return memory.total() <= GPU_BYTES;
        }
    }

    private ZeroScale() {}

    /** The rows of {@code preset} on {@code gpus} GPUs, {@code perNode} per node, stages 0 to 3. */
    public static List<Row> rows(String preset, int gpus, int perNode, long tokensPerGpu) {
        ModelConfig config = OptPresets.config(preset, true);
        CausalLM model = CausalLM.of(config);
        long params = model.parameterCount();
        ZeroPlan plan = new ZeroPlan(ZeroPlan.layerGroups(model), gpus, 2);
        double bandwidth = gpus <= perNode ? NVLINK_BYTES_PER_S : IB_BYTES_PER_S;
        double compute = 6.0 * params * tokensPerGpu / BF16_FLOPS;
        List<Row> rows = new ArrayList<>();
        for (int stage = 0; stage <= 3; stage++) {
            long sent = plan.step(stage).bytesPerRank() * (gpus - 1) / gpus;
            String name = OptPresets.canonical(preset);
            rows.add(new Row(name != null ? name : preset, params, gpus, perNode, stage,
                    plan.memoryPerRank(stage, 2, 2, 12), sent, sent / bandwidth, compute));
        }
        return rows;
    }

    /** The markdown table of {@link #rows} for several set-ups. */
    public static String table(List<Row> rows, long tokensPerGpu) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "Model states per GPU (bf16 weights and gradients, fp32 master weights and "
                + "AdamW moments: 16 bytes per parameter unpartitioned) and one training step's communication per GPU "
                + "(bf16 ring collectives: NVLink 900 GB/s within a node, InfiniBand 50 GB/s per GPU across nodes) "
                + "against the compute floor of that step (6 x parameters x %,d tokens per GPU at 798 TFLOP/s). "
                + "Activations come on top; \"fits\" is the model states alone in 80 GiB.%n%n", tokensPerGpu));
        sb.append("| model | parameters | GPUs | ZeRO stage | params GiB | grads GiB | optimizer GiB | total GiB | fits 80 GiB "
                + "| sent per GPU per step GB | comm ms | compute floor ms | comm / compute |\n");
        sb.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (Row r : rows) {
            double gb = 1L << 30;
            sb.append(String.format(Locale.ROOT, "| %s | %.1fB | %d (%s) | %d | %.1f | %.1f | %.1f | %.1f | %s | %.2f | "
                            + "%.0f | %.0f | %.2f |%n", r.model(), r.parameters() / 1e9, r.gpus(),
                    r.gpus() <= r.perNode() ? "1 node" : (r.gpus() / r.perNode()) + " nodes", r.stage(),
                    r.memory().parameterBytes() / gb, r.memory().gradientBytes() / gb,
                    r.memory().optimizerBytes() / gb, r.memory().total() / gb, r.fits() ? "yes" : "no",
                    r.bytesSentPerGpu() / 1e9, r.commSeconds() * 1e3, r.computeSeconds() * 1e3,
                    r.commSeconds() / r.computeSeconds()));
        }
        return sb.toString();
    }

    /** Prints the two set-ups: OPT-13B on 8 GPUs (one node) and OPT-66B on 16 (two nodes). */
    public static void main(String[] args) {
        long tokens = args.length > 0 ? Long.parseLong(args[0]) : 16 * 512;
        List<Row> rows = new ArrayList<>(rows("opt-13b", 8, 8, tokens));
        rows.addAll(rows("opt-66b", 16, 8, tokens));
        System.out.print(table(rows, tokens));
    }
}
