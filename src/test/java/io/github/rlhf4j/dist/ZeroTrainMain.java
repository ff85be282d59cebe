package io.github.rlhf4j.dist;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.rlhf.Optimized;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/**
 * One rank of {@link ZeroTrainingTest}: a tiny GPT-2 trained for {@code steps} steps on a global batch of
 * {@link #GLOBAL_BATCH} random sequences, this rank taking its equal share of the rows, with
 * {@link Optimized} at ZeRO {@code stage} over the communicator of the environment (one process without a launcher).
 * Rank 0 writes the final weights (F32, little-endian, the store's layout without the end padding) and a line of
 * figures: the bytes the optimizer's collectives sent per step, the AdamW moments this rank holds.
 *
 * <p>With {@code emu}, the model lives on the emulated CUDA device (the kernels' own source on the CPU) and the ranks
 * talk over {@link Communicator#forDevice}'s {@link DeviceCommunicator}: device tensors staged through the host, or
 * over NCCL's glue with {@code -Drlhf4j.dist.device_transport=nccl} and NCCL's stand-in (which reduces over MPI).
 *
 * <p>Usage: {@code ZeroTrainMain STAGE STEPS OUT_DIR [cpu|emu] [offload|zero-init|lora]} ({@code offload}: the
 * optimizer's state and step on the host, ZeRO-Offload, with the model on the emulated device; {@code zero-init}:
 * stage 3's store built partitioned, never whole, and its weights loaded a group at a time; {@code lora}: rank-4 LoRA
 * adapters on the layers, which alone train). Figures at stage 3 also: {@code grad_part}, rank 0's gradient
 * partition's elements, and {@code grad_parts_sum}, every rank's together)
 */
public final class ZeroTrainMain {
    static final int VOCAB = 61, T = 16, GLOBAL_BATCH = 8, EMBD = 32, LAYERS = 2, HEADS = 4;

    public static void main(String[] args) throws Exception {
        int stage = Integer.parseInt(args[0]), steps = Integer.parseInt(args[1]);
        Path out = Path.of(args[2]);
        Device.cpu().setNumThreads(1);
        Device dev = args.length > 3 && args[3].equals("emu") ? io.github.rlhf4j.kernels.Emulated.get().device()
                : Device.cpu();
        try (Communicator comm = Communicator.forDevice(Communicator.fromEnvironment(), dev)) {
            if (comm instanceof DeviceCommunicator dc && comm.rank() == 0)
                Files.writeString(out.resolve("transport.txt"), dc.transport());
            int world = comm.worldSize(), rank = comm.rank();
            if (GLOBAL_BATCH % world != 0) throw new IllegalArgumentException("world " + world + " must divide " + GLOBAL_BATCH);
            CausalLM model = CausalLM.of(Gpt2Config.tiny(VOCAB, T, EMBD, LAYERS, HEADS));
            comm.checkSame("model", model.config().toString());
            String option = args.length > 4 ? args[4] : "";
            // every layout starts from the same weights: those of the default layout (whose offsets seed the init)
            CausalLM init = CausalLM.of(model.config());
            if (option.equals("lora")) { // DS-Chat's --only-optimize-lora: the adapters alone train
                io.github.rlhf4j.nn.Lora.Config lora = new io.github.rlhf4j.nn.Lora.Config(4, "h.", true);
                lora.applyTo(model);
                lora.applyTo(init); // written with the base weights, so every layout starts from the same adapters
            }
            Path initDir = Files.createDirectories(out.resolve("init-rank-" + rank));
            try (ParameterStore ref = ParameterStore.allocate(init, dev, DType.F32, 5, false)) {
                java.util.Map<String, Tensor> weights = new java.util.LinkedHashMap<>();
                init.namedParameters().forEach((name, p) -> weights.put(name, p.value()));
                io.github.rlhf4j.model.Safetensors.write(initDir.resolve("model.safetensors"), weights, DType.F32,
                        java.util.Map.of());
            }
            long baseline = dev.memory().live();
            long[] buildMax = {0};
            Optimized.Settings settings = new Optimized.Settings(1e-3, 0.1, LrSchedule.constant(0), 1.0);
            ParameterStore store;
            ShardedStore built = null;
            if (option.equals("zero-init")) {
                // built partitioned (zero.Init): laid out, this rank's slices allocated, the weights read a
                // group at a time; the most held at any point while loading is recorded
                if (stage != 3 || world < 2) throw new IllegalArgumentException("zero-init is stage 3 on 2+ ranks");
                store = ParameterStore.layOut(model, dev, DType.F32, 5, true, Zero.layout(world, stage));
                ShardedStore sharded = new ShardedStore(store, comm, 3);
                built = sharded;
                io.github.rlhf4j.model.HfModel.loadWeights(model, model.config().basePrefix(), initDir,
                        java.util.Set.of(), name -> {
                            buildMax[0] = Math.max(buildMax[0], dev.memory().live() - baseline);
                            sharded.loaded(name);
                        });
            } else {
                store = ParameterStore.allocate(model, dev, DType.F32, 5, true, Zero.layout(world, stage));
                buildMax[0] = dev.memory().live() - baseline;
                io.github.rlhf4j.model.HfModel.loadWeights(model, model.config().basePrefix(), initDir,
                        java.util.Set.of());
            }
            try (store;
                 Optimized opt = built != null ? new Optimized(built, settings, comm, false)
                         : new Optimized(store, settings, comm, stage, option.equals("offload"))) {
                model.train(true);
                int rows = GLOBAL_BATCH / world;
                long sent0 = 0, building = comm.bytesMoved().totalBytes(); // zero-init: each group gathered once
                long ahead0 = 0, aheadBuilding = comm.bytesMoved().startedAhead();
                for (int step = 0; step < steps; step++) {
                    Random rng = new Random(1000 + step); // every rank draws the same global batch
                    int[] ids = new int[GLOBAL_BATCH * T], targets = new int[GLOBAL_BATCH * T];
                    for (int i = 0; i < ids.length; i++) {
                        ids[i] = rng.nextInt(VOCAB);
                        targets[i] = (ids[i] * 7 + 3) % VOCAB; // a learnable map, so the weights move with purpose
                    }
                    int[] myIds = java.util.Arrays.copyOfRange(ids, rank * rows * T, (rank + 1) * rows * T);
                    int[] myTargets = java.util.Arrays.copyOfRange(targets, rank * rows * T, (rank + 1) * rows * T);
                    try (Scope s = Scope.open(dev)) {
                        Tensor loss = Functional.crossEntropy(model.forward(Tensor.ofInts(myIds, rows, T)),
                                Tensor.ofInts(myTargets, rows, T), -100);
                        if (opt.acceptLoss("zero test", loss.item())) {
                            loss.backward();
                            opt.step("zero test");
                        }
                    }
                    if (step == 0) {
                        sent0 = comm.bytesMoved().totalBytes() - building;
                        ahead0 = comm.bytesMoved().startedAhead() - aheadBuilding;
                    }
                }
                // model states at rest, between steps: parameters, gradients, AdamW moments (and nothing else live)
                long live = dev.memory().live() - baseline;
                ByteBuffer b = ByteBuffer.allocate(4 * (int) model.parameterCount()).order(ByteOrder.LITTLE_ENDIAN);
                try (var whole = opt.gathered()) { // stage 3: a collective, on every rank
                    for (ParameterStore.Entry e : store.entries())
                        for (float f : e.parameter().value().toFloatArray()) b.putFloat(f);
                }
                long[] gradParts = opt.partitionedParameters() == null ? null // stage 3: every rank's, a collective
                        : comm.allGather(opt.partitionedParameters().partitionGrad().numel());
                if (rank == 0) {
                    Files.write(out.resolve("weights.f32"), b.array());
                    long moments = 0;
                    for (int g = 0; g < opt.adamw().groups().size(); g++)
                        moments += 2L * 4 * opt.adamw().groups().get(g).params().numel();
                    Files.writeString(out.resolve("figures.txt"), "world=" + world + " stage=" + stage
                            + " flat=" + store.flatSize() + " bytes_step1=" + sent0 + " ahead_step1=" + ahead0
                            + " moment_bytes=" + moments
                            + " live=" + live + " flat_dims=" + opt.emaSource().dim() + " build_max=" + buildMax[0]
                            + (gradParts == null ? "" : " grad_part=" + gradParts[0] + " grad_parts_sum="
                                    + java.util.Arrays.stream(gradParts).sum())
                            + " trainable=" + trainable(store) + " streamed=" + opt.gradientsStreamedDuringBackward()
                            + " groups=" + (store.groupBoundaries().length - 1) + "\n");
                    StringBuilder cuts = new StringBuilder();
                    for (long c : store.groupBoundaries()) cuts.append(c).append('\n');
                    Files.writeString(out.resolve("boundaries.txt"), cuts);
                }
            }
        }
    }

    /** The trainable parameters' elements, each rounded up to the store's alignment. */
    static long trainable(ParameterStore store) {
        long n = 0;
        for (ParameterStore.Entry e : store.entries())
            if (!e.parameter().isFrozen())
                n += (e.numel() + ParameterStore.ALIGN - 1) / ParameterStore.ALIGN * ParameterStore.ALIGN;
        return n;
    }
}
