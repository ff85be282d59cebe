package io.github.rlhf4j.dist;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Data-parallel training under ZeRO stages 0 to 3 with real {@code mpirun} ranks on the CPU ({@link ZeroTrainMain}):
 * 20 steps of a tiny GPT-2 on 2 and 4 ranks, each taking its share of the same global batch, against one process
 * taking all of it. The sequences have one length, so the mean of the ranks' mean losses is the one process's mean
 * and the weights must agree up to the reduction order of the gradient sums (float32): every weight within 2e-5 (the
 * learning rate is 1e-3), nearly all within 1e-6. The bytes the optimizer's collectives send in a step are ZeRO's
 * volumes by {@link Traffic}'s count, and the model states a rank holds between steps are the partitioner's plan
 * (stage 1: optimizer / N; stage 2: + gradients / N; stage 3: + parameters / N).
 */
class ZeroTrainingTest {
    static final int STEPS = 20;
    /** The flat limit of the {@code cpu-rows} runs: every flat buffer longer than this is kept in rows of 64. */
    static final int ROWS_LIMIT = 1024;
    static String mpirun;

    @TempDir
    Path tmp;

    @BeforeAll
    static void findMpirun() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator))
            if (Files.isExecutable(Path.of(dir, "mpirun"))) mpirun = Path.of(dir, "mpirun").toString();
        if (mpirun == null) System.out.println("ZeroTrainingTest skipped: no mpirun on the PATH (install openmpi-bin)");
    }

    /** Runs ZeroTrainMain on {@code ranks} processes (1: without a launcher) and returns its output folder. */
    Path run(int ranks, int stage) throws Exception {
        return run(ZeroTrainMain.class, ranks, stage, STEPS);
    }

    Path run(Class<?> main, int ranks, int stage, int steps) throws Exception {
        return run(main, ranks, stage, steps, "cpu");
    }

    /**
     * {@code mode}: {@code cpu}; {@code emu} (the emulated CUDA device, device tensors staged through the host); or
     * {@code emu-nccl} (the emulated device over NCCL's glue and its stand-in library, which reduces over MPI).
     */
    Path run(Class<?> main, int ranks, int stage, int steps, String mode) throws Exception {
        String name = main.getSimpleName() + "-np" + ranks + "-stage" + stage + "-steps" + steps + "-" + mode;
        Path out = Files.createDirectories(tmp.resolve(name));
        List<String> cmd = new ArrayList<>();
        // by name, not by path: an absolute path makes Open MPI guess a --prefix from it
        if (ranks > 1) cmd.addAll(List.of("mpirun", "-np", Integer.toString(ranks), "--oversubscribe", "--bind-to", "none"));
        cmd.addAll(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                "-Drlhf4j.emu.dir=" + io.github.rlhf4j.kernels.Emulated.folder().toAbsolutePath()));
        if (mode.equals("emu-nccl")) cmd.add("-D" + DeviceCommunicator.TRANSPORT_PROPERTY + "=nccl");
        if (mode.equals("cpu-rows")) cmd.add("-Drlhf4j.tensor.flat_limit=" + ROWS_LIMIT);
        // stage 3's prefetch is off on the CPU by default: the PPO runs and "cpu-prefetch" turn it on
        if (mode.equals("cpu-prefetch") || main == ZeroPpoMain.class)
            cmd.add("-D" + ShardedStore.PREFETCH_PROPERTY + "=true");
        if (mode.equals("cpu-budget")) cmd.add("-D" + io.github.rlhf4j.rlhf.RlhfEngine.BUDGET_PROPERTY + "=" + BUDGET);
        cmd.addAll(List.of(main.getName(), Integer.toString(stage), Integer.toString(steps), out.toString(),
                mode.startsWith("emu") ? "emu" : "cpu"));
        if (mode.equals("emu-offload")) cmd.add("offload");
        if (mode.equals("cpu-zero-init")) cmd.add("zero-init");
        if (mode.equals("cpu-lora")) cmd.add("lora");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(tmp.resolve(name + ".log").toFile());
        Map<String, String> env = pb.environment();
        if (mode.equals("emu-nccl")) {
            env.put("RLHF4J_NCCL", ncclStubs().toString());
            env.put("LD_LIBRARY_PATH", ncclStubs() + File.pathSeparator + env.getOrDefault("LD_LIBRARY_PATH", ""));
        }
        env.put("OMPI_ALLOW_RUN_AS_ROOT", "1");
        env.put("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        env.put("OMP_NUM_THREADS", "1");
        Process p = pb.start();
        assertTrue(p.waitFor(240, TimeUnit.SECONDS), "ranks " + ranks + " stage " + stage + " did not finish");
        String log = Files.readString(tmp.resolve(name + ".log"));
        assertEquals(0, p.exitValue(), log);
        return out;
    }

    static float[] weights(Path out) throws Exception {
        return floats(out.resolve("weights.f32"));
    }

    static float[] floats(Path file) throws Exception {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        float[] w = new float[b.remaining() / 4];
        b.asFloatBuffer().get(w);
        return w;
    }

    static Map<String, Long> figures(Path out) throws Exception {
        Map<String, Long> m = new HashMap<>();
        for (String kv : Files.readString(out.resolve("figures.txt")).trim().split(" ")) {
            String[] p = kv.split("=");
            m.put(p[0], Long.parseLong(p[1]));
        }
        return m;
    }

    static long[] boundaries(Path out) throws Exception {
        return Files.readAllLines(out.resolve("boundaries.txt")).stream().mapToLong(Long::parseLong).toArray();
    }

    /** NCCL's stand-ins (libnccl.so.2, libcuda.so.1) that the native build leaves beside its objects. */
    static Path ncclStubs() throws Exception {
        return Path.of(ZeroTrainingTest.class.getProtectionDomain().getCodeSource().getLocation().toURI())
                .getParent().resolve("native-obj/dist/stubs");
    }

    @Test
    void everyStageOnTwoAndFourRanksReachesTheWeightsOfOneProcess() throws Exception {
        assumeTrue(mpirun != null, "no mpirun on the PATH (install openmpi-bin)");
        Path one = run(1, 0);
        for (int[] rs : new int[][] {{2, 0}, {2, 1}, {4, 1}, {2, 2}, {4, 2}, {2, 3}, {4, 3}})
            assertLikeOneProcess(one, run(rs[0], rs[1]), rs[0], rs[1], "");
    }

    /**
     * Stage 3's prefetch (the next layer's all-gather started before the current layer computes, waited for at its
     * use) changes when the bytes move, not what arrives: on 2 ranks, the run with it and the run without (the
     * CPU's default) reach the same weights bit for bit and send the same bytes per step, and with it every layer's
     * gather but the first of the forward and of the backward was started ahead. (assertLikeOneProcess counts the
     * bytes: a group gathered ahead and then not used would send more than the paper's volume.)
     */
    @Test
    void stageThreesPrefetchMovesTheSameBytesEarlierAndTrainsTheSame() throws Exception {
        assumeTrue(mpirun != null, "no mpirun on the PATH (install openmpi-bin)");
        Path with = run(ZeroTrainMain.class, 2, 3, STEPS, "cpu-prefetch"), without = run(ZeroTrainMain.class, 2, 3,
                STEPS, "cpu");
        assertLikeOneProcess(run(1, 0), with, 2, 3, " (prefetch)");
        int layers = boundaries(with).length - 3; // groups: embeddings, the layers, the final norm and head
        assertTrue(layers >= 2, "a model of " + layers + " layers has no next layer to prefetch");
        System.out.printf(java.util.Locale.ROOT, "ZeroTrainingTest 2 ranks, stage 3: %d of the step's %d layer "
                + "gathers started ahead (prefetch on), %d (off, the CPU's default); %,d and %,d bytes per step%n",
                figures(with).get("ahead_step1"), 2 * layers, figures(without).get("ahead_step1"),
                figures(with).get("bytes_step1"), figures(without).get("bytes_step1"));
        assertEquals(2L * (layers - 1), figures(with).get("ahead_step1"), "forward and backward, each but the first");
        assertEquals(0L, figures(without).get("ahead_step1"));
        assertEquals(figures(without).get("bytes_step1"), figures(with).get("bytes_step1"));
        assertArrayEquals(weights(without), weights(with), "the same weights with the prefetch and without");
    }

    /**
     * ZeRO stage 3 built partitioned (DeepSpeed's {@code zero.Init}): each rank lays the model out, allocates and
     * initialises only its slices, and reads the weights from a safetensors file one layer group at a time. It
     * reaches the weights of the whole-built stage 3 bit for bit, and while loading a rank never holds more than its
     * partition (parameters and gradients) and one gathered group, where building whole holds the whole parameters
     * and gradients. (In this 2-layer model the embeddings are most of it, so the gap is small; in OPT-13B on 8
     * GPUs it is 2/8 of the model and one of 40 layers against the whole.)
     */
    @Test
    void builtPartitionedStageThreeNeverHoldsTheWholeModelAndTrainsTheSame() throws Exception {
        assumeTrue(mpirun != null, "no mpirun on the PATH (install openmpi-bin)");
        Path one = run(1, 0);
        for (int ranks : new int[] {2, 4}) {
            Path whole = run(ZeroTrainMain.class, ranks, 3, STEPS, "cpu");
            Path part = run(ZeroTrainMain.class, ranks, 3, STEPS, "cpu-zero-init");
            assertLikeOneProcess(one, part, ranks, 3, " (built partitioned)");
            long[] cuts = boundaries(part);
            long flatBytes = 4 * figures(part).get("flat"), largestGroup = 0;
            for (int g = 0; g + 1 < cuts.length; g++) largestGroup = Math.max(largestGroup, 4 * (cuts[g + 1] - cuts[g]));
            ZeroPlan.Memory plan = new ZeroPlan(cuts, ranks, 4).memoryPerRank(3, 4, 4, 8);
            long built = figures(part).get("build_max"), bound = plan.parameterBytes() + plan.gradientBytes()
                    + largestGroup + 8192;
            System.out.printf(java.util.Locale.ROOT, "ZeroTrainingTest %d ranks, stage 3 built partitioned: at most "
                    + "%,d bytes held while loading (partition %,d + %,d gradients + largest group %,d); built whole "
                    + "%,d; the whole parameters %,d%n", ranks, built, plan.parameterBytes(), plan.gradientBytes(),
                    largestGroup, figures(whole).get("build_max"), flatBytes);
            assertTrue(built <= bound, ranks + " ranks: " + built + " bytes held while loading, bound " + bound);
            assertTrue(figures(whole).get("build_max") >= 2 * flatBytes, "built whole: parameters and gradients");
            assertTrue(built < figures(whole).get("build_max"), ranks + " ranks: " + built + " bytes held while "
                    + "loading, as many as building whole");
            assertArrayEquals(weights(whole), weights(part), ranks + " ranks: built partitioned or whole, the same "
                    + "weights after " + STEPS + " steps");
        }
    }

    /**
     * DS-Chat's {@code --only-optimize-lora} (rank-4 adapters on the layers, all else frozen) on 2 ranks: stages 1 to 3
     * reach one process's weights, and at stage 2 and 3 a rank keeps gradients for its slice of the trainable
     * parameters alone, not of the whole model (DeepSpeed partitions gradients of parameters that require grad).
     */
    @Test
    void withOnlyTheLoraAdaptersTrainingTheGradientPartitionHoldsThemAlone() throws Exception {
        assumeTrue(mpirun != null, "no mpirun on the PATH (install openmpi-bin)");
        float[] single = weights(run(ZeroTrainMain.class, 1, 0, STEPS, "cpu-lora"));
        float[] start = weights(run(ZeroTrainMain.class, 1, 0, 0, "cpu-lora"));
        double trained = 0;
        for (int i = 0; i < start.length; i++) trained = Math.max(trained, Math.abs(single[i] - start[i]));
        assertTrue(trained > 1e-3, "the adapters trained: " + trained);
        for (int stage = 1; stage <= 3; stage++) {
            Path out = run(ZeroTrainMain.class, 2, stage, STEPS, "cpu-lora");
            float[] w = weights(out);
            double max = 0;
            for (int i = 0; i < w.length; i++) max = Math.max(max, Math.abs(w[i] - single[i]));
            Map<String, Long> f = figures(out);
            System.out.printf(java.util.Locale.ROOT, "ZeroTrainingTest 2 ranks, stage %d, LoRA only: max |w - w_1 "
                    + "process| %.2e; rank 0's gradient partition %s elements of %,d trainable, %,d in all%n", stage, max,
                    f.containsKey("grad_part") ? String.format(java.util.Locale.ROOT, "%,d", f.get("grad_part")) : "-",
                    f.get("trainable"), f.get("flat"));
            assertTrue(max < 3e-6, "stage " + stage + ": " + max);
            if (stage == 3) {
                assertTrue(f.get("trainable") < f.get("flat") / 4, "the adapters are a fraction of the model");
                // each rank keeps its slices of the trainable stretches: together, exactly the trainable parameters
                assertEquals(f.get("trainable"), f.get("grad_parts_sum"), "the ranks' gradient partitions");
                assertTrue(f.get("grad_part") > 0 && f.get("grad_part") < f.get("trainable"), f.toString());
            }
        }
    }

    /**
     * The flat buffers (weights, gradients, moments, partitions) in rows of 64, the layout of a model past 2^31
     * elements, which {@code rlhf4j.tensor.flat_limit} gives this tiny one: every stage on 2 ranks still reaches the
     * weights of one process that keeps them 1-d, within the same tolerance.
     */
    @Test
    void withTheFlatBuffersInRowsEveryStageReachesTheWeightsOfOneProcess() throws Exception {
        assumeTrue(mpirun != null, "no mpirun on the PATH (install openmpi-bin)");
        Path one = run(1, 0);
        assertEquals(1, figures(one).get("flat_dims"));
        for (int stage = 0; stage <= 3; stage++) {
            Path out = run(ZeroTrainMain.class, 2, stage, STEPS, "cpu-rows");
            assertEquals(2, figures(out).get("flat_dims"), "stage " + stage + ": the flat buffers are in rows");
            assertLikeOneProcess(one, out, 2, stage, " (flat buffers in rows)");
        }
    }

    /**
     * The same on a GPU's code path, the models on the emulated CUDA device, 2 ranks: the stages' device tensors go
     * through {@link DeviceCommunicator}, staged through the host over MPI (stages 1 and 2), and over NCCL's glue
     * (stages 0 and 3, stage 3's prefetch included) with NCCL's stand-in library, which reduces over MPI: what NCCL does on real GPUs is not
     * exercised here, the calls into it from the stages are. One process on the emulated device is the reference.
     */
    @Test
    void onTheEmulatedGpuTheRanksReachTheWeightsOfOneProcess() throws Exception {
        assumeTrue(mpirun != null, "no mpirun on the PATH (install openmpi-bin)");
        int steps = 6;
        Path one = run(ZeroTrainMain.class, 1, 0, steps, "emu");
        boolean stubs = Files.isRegularFile(ncclStubs().resolve("libnccl.so.2"));
        if (!stubs) System.out.println("ZeroTrainingTest: no NCCL stand-ins at " + ncclStubs() + ": the NCCL path "
                + "of the stages is not checked");
        for (int stage = 0; stage <= 3; stage++) {
            String mode = stubs && (stage == 0 || stage == 3) ? "emu-nccl" : "emu";
            Path out = run(ZeroTrainMain.class, 2, stage, steps, mode);
            String transport = Files.readString(out.resolve("transport.txt"));
            System.out.println("ZeroTrainingTest emulated GPU, 2 ranks, stage " + stage + ": " + transport);
            assertTrue(mode.equals("emu-nccl") ? transport.startsWith("device tensors over NCCL (NCCL 2.99.99")
                    : transport.startsWith("device tensors staged through host memory over MPI (cuda-emu:0 is not"),
                    transport);
            assertLikeOneProcess(one, out, 2, stage, " (emulated GPU, " + mode + ")");
            if (stage == 3) // started ahead over NCCL; host staging gathers at once
                assertEquals(mode.equals("emu-nccl") ? 2L * (boundaries(out).length - 4) : 0L,
                        figures(out).get("ahead_step1"), "stage 3's gathers started ahead over " + mode);
        }
        // stages 2 and 3 with ZeRO-Offload: each rank's optimizer partition and its step on the host; the device
        // holds only its parameters and partitioned gradients between steps; every group's gradient went down to the
        // host as its reduce-scatter ended, during the backward
        for (int stage : new int[] {2, 3}) {
            Path offloaded = run(ZeroTrainMain.class, 2, stage, steps, "emu-offload");
            assertLikeOneProcess(one, offloaded, 2, stage, " (emulated GPU, stage " + stage + " + offload)", true);
            Map<String, Long> f = figures(offloaded);
            assertEquals(f.get("groups"), f.get("streamed"), "stage " + stage + ": the group gradients streamed down "
                    + "during the last backward");
        }
    }

    private static void assertLikeOneProcess(Path one, Path out, int ranks, int stage, String where) throws Exception {
        assertLikeOneProcess(one, out, ranks, stage, where, false);
    }

    /** {@code offloaded}: the optimizer state is in host memory, not in the device memory measured at rest. */
    private static void assertLikeOneProcess(Path one, Path out, int ranks, int stage, String where,
                                             boolean offloaded) throws Exception {
        float[] single = weights(one);
        long baseline = figures(one).get("live");
        float[] w = weights(out);
        assertEquals(single.length, w.length);
        double max = 0;
        int apart = 0;
        for (int i = 0; i < w.length; i++) {
            double d = Math.abs(w[i] - single[i]);
            max = Math.max(max, d);
            if (d > 1e-6) apart++;
        }
        Map<String, Long> f = figures(out);
        long flatBytes = 4 * f.get("flat");
        long[] cuts = boundaries(out);
        long layerBytes = 0; // the transformer layers' groups: all but the first (embeddings) and last (head)
        for (int g = 1; g + 2 < cuts.length; g++) layerBytes += 4 * (cuts[g + 1] - cuts[g]);
        long expectedBytes = stage == 0 ? Traffic.volume(Collective.ALL_REDUCE, flatBytes, ranks)
                // reduce-scatter of the gradients, all-gather of the weights, and the 8-byte norm all-reduce
                : Traffic.volume(Collective.REDUCE_SCATTER, flatBytes, ranks)
                        + Traffic.volume(Collective.ALL_GATHER, flatBytes, ranks)
                        + Traffic.volume(Collective.ALL_REDUCE, 8, ranks)
                        // stage 3 gathers each layer again for its backward (the embeddings and head stay
                        // gathered from their first use to the step, so they are gathered once)
                        + (stage == 3 ? Traffic.volume(Collective.ALL_GATHER, layerBytes, ranks) : 0);
        // the paper's count: 2 Psi for stages 0-2, 3 Psi for stage 3, (N - 1) / N of it leaving each rank
        long paper = (stage == 3 ? 3 : 2) * flatBytes * (ranks - 1) / ranks;
        // model states at rest against the partitioner's plan for this very layout (fp32 weights and
        // gradients, two fp32 moments): stage 1 optimizer / N, stage 2 + gradients / N, stage 3 + parameters / N
        ZeroPlan.Memory plan = new ZeroPlan(cuts, ranks, 4).memoryPerRank(stage, 4, 4, 8);
        long live = f.get("live"), planned = plan.total() - (offloaded ? plan.optimizerBytes() : 0);
        System.out.printf(java.util.Locale.ROOT, "ZeroTrainingTest %d ranks, stage %d%s: model states held at "
                + "rest %,d bytes (plan: %,d parameters + %,d gradients + %,d optimizer%s = %,d; one process %,d)%n",
                ranks, stage, where, live, plan.parameterBytes(), plan.gradientBytes(), plan.optimizerBytes(),
                offloaded ? " on the host" : "", planned, baseline);
        // within 8 KiB: the pool's 512-byte size classes and a few scalars; the moments cover no padding
        assertTrue(Math.abs(live - planned) <= 8192, ranks + " ranks, stage " + stage + where + ": " + live
                + " bytes held, the plan says " + planned);
        // the paper's volume, less (stage 3) the second gather of the embeddings and head we do not do, within
        // the 8-byte norm and rounding
        long prePost = 4 * ((cuts[1] - cuts[0]) + (cuts[cuts.length - 1] - cuts[cuts.length - 2]));
        long notGathered = stage == 3 ? Traffic.volume(Collective.ALL_GATHER, prePost, ranks) : 0;
        assertTrue(Math.abs(paper - notGathered - expectedBytes) <= 16,
                "stage " + stage + ": " + expectedBytes + " bytes against the paper's " + paper);
        System.out.printf(java.util.Locale.ROOT, "ZeroTrainingTest %d ranks, stage %d%s: max |w - w_1 process| "
                + "%.2e, %d of %d weights apart by > 1e-6; %,d bytes sent per step (paper: %d Psi x (N-1)/N = "
                + "%,d); AdamW moments on rank 0: %,d bytes%n", ranks, stage, where, max, apart, w.length,
                f.get("bytes_step1"), stage == 3 ? 3 : 2, paper, f.get("moment_bytes"));
        assertTrue(max < 2e-5, ranks + " ranks, stage " + stage + ": weights differ by " + max);
        assertTrue(apart < w.length / 100, apart + " weights apart by more than 1e-6");
        assertEquals(expectedBytes, f.get("bytes_step1"), "bytes per step");
        long fullMoments = 2L * 4 * figures(one).get("flat");
        // stage 1: AdamW's two fp32 moments for this rank's slice alone: 1/N of the (padded) flat buffer
        if (stage >= 1) assertTrue(f.get("moment_bytes") <= 2L * 4 * f.get("flat") / ranks
                && f.get("moment_bytes") < fullMoments / ranks + 2L * 4 * Zero.flatMultiple(ranks),
                "stage 1 keeps 1/N of the moments: " + f.get("moment_bytes") + " of " + fullMoments);
        else assertTrue(f.get("moment_bytes") > fullMoments / 2, "stage 0 keeps them all");
    }

    /** What {@code cpu-budget} lets the hybrid engine gather per rank: more than one of ZeroPpoMain's layer groups. */
    static final long BUDGET = 60_000;

    /**
     * Step 3 under ZeRO stage 3 ({@link ZeroPpoMain}): five PPO iterations of actor and critic on 2 and 4 ranks reach
     * the weights of one process, and so does the partitioned EMA once gathered; the frozen reference and reward
     * model are partitioned too (their logprobs and rewards, computed a layer at a time, are one process's); the
     * actor, gathered whole once for the generation phase, generates for each rank's prompts what one process
     * generates for them, and so does it when the hybrid engine has room for part of it only.
     */
    @Test
    void ppoUnderStageThreeMatchesOneProcess() throws Exception {
        assumeTrue(mpirun != null, "no mpirun on the PATH (install openmpi-bin)");
        Path one = run(ZeroPpoMain.class, 1, 0, 5);
        String generated = Files.readString(one.resolve("generated-rank0.txt"));
        for (int ranks : new int[] {2, 4}) {
            Path out = run(ZeroPpoMain.class, ranks, 3, 5);
            StringBuilder all = new StringBuilder();
            for (int r = 0; r < ranks; r++) all.append(Files.readString(out.resolve("generated-rank" + r + ".txt")));
            assertEquals(generated, all.toString(), ranks + " ranks generate what one process generates");
            String mode = Files.readString(out.resolve("mode.txt"));
            assertTrue(mode.startsWith("ZeRO-3 hybrid"), mode);
            assertTrue(mode.contains("reference partitioned over the ranks (ZeRO-3 inference), reward model "
                    + "partitioned"), mode);
            for (String model : new String[] {"actor", "critic", "ema"}) {
                float[] want = floats(one.resolve(model + ".f32")), got = floats(out.resolve(model + ".f32"));
                assertEquals(want.length, got.length);
                double max = 0;
                for (int i = 0; i < want.length; i++) max = Math.max(max, Math.abs(want[i] - got[i]));
                System.out.printf(java.util.Locale.ROOT, "ZeroTrainingTest PPO, %d ranks, stage 3: %s max |w - w_1 "
                        + "process| %.2e%n", ranks, model, max);
                assertTrue(max < 2e-5, model + " on " + ranks + " ranks differs by " + max);
            }
        }
        // --hybrid-engine auto with room for part of the actor (a budget of about one layer group): the groups that
        // fit stay gathered for the phase, the others are gathered for each token, and the tokens are the same
        Path part = run(ZeroPpoMain.class, 2, 3, 5, "cpu-budget");
        String mode = Files.readString(part.resolve("mode.txt"));
        System.out.println("ZeroTrainingTest PPO, 2 ranks, stage 3, a budget of " + BUDGET + " bytes: " + mode.lines()
                .findFirst().orElse(""));
        assertTrue(mode.startsWith("ZeRO-3 hybrid, in part: ") && !mode.startsWith("ZeRO-3 hybrid, in part: 0 of"),
                mode);
        StringBuilder all = new StringBuilder();
        for (int r = 0; r < 2; r++) all.append(Files.readString(part.resolve("generated-rank" + r + ".txt")));
        assertEquals(generated, all.toString(), "2 ranks, the actor gathered in part, generate what one process does");
        // and the run trained: the actor moved away from its average (which lags it)
        float[] actor = floats(one.resolve("actor.f32")), ema = floats(one.resolve("ema.f32"));
        double moved = 0;
        for (int i = 0; i < actor.length; i++) moved = Math.max(moved, Math.abs(actor[i] - ema[i]));
        assertTrue(moved > 1e-3, "the actor moved " + moved + " from its EMA");
    }

    /**
     * Step 3 built as {@code train} builds it at ZeRO stage 3 ({@link ZeroPpoMain} {@code zero-init}): the actor,
     * critic, reference, reward model and EMA each built partitioned from Hugging Face folders, read a layer group at
     * a time, and the actor and EMA saved a group at a time. On 2 and 4 ranks the actor, critic and EMA after five
     * iterations are bit for bit those of the same run built whole, and what the actor generates layer by layer
     * (without the hybrid engine) is what it generates gathered whole; building holds at
     * most the four models' partitions, the two gradient partitions and one group, and saving at most one group.
     */
    @Test
    void ppoBuiltPartitionedAndSavedByGroupsMatchesTheRunBuiltWhole() throws Exception {
        assumeTrue(mpirun != null, "no mpirun on the PATH (install openmpi-bin)");
        for (int ranks : new int[] {2, 4}) {
            Path whole = run(ZeroPpoMain.class, ranks, 3, 5);
            Path part = run(ZeroPpoMain.class, ranks, 3, 5, "cpu-zero-init");
            for (String model : new String[] {"actor", "critic", "ema"})
                assertArrayEquals(Files.readAllBytes(whole.resolve(model + ".f32")),
                        Files.readAllBytes(part.resolve(model + ".f32")), ranks + " ranks: " + model + " built "
                                + "partitioned (and, actor and EMA, read back from their saved folders) differs");
            for (int r = 0; r < ranks; r++)
                assertEquals(Files.readString(whole.resolve("generated-rank" + r + ".txt")),
                        Files.readString(part.resolve("generated-rank" + r + ".txt")), "rank " + r + " generates");
            String mode = Files.readString(part.resolve("mode.txt"));
            assertTrue(mode.contains("reference partitioned") && mode.startsWith("ZeRO-3, layer by layer"), mode);
            assertTrue(Files.readString(whole.resolve("mode.txt")).startsWith("ZeRO-3 hybrid"));
            Map<String, Long> f = figures(part), w = figures(whole);
            long flat = 4 * f.get("flat"), group = 4 * f.get("largest_group");
            long bound = 6 * flat / ranks + group + 16384; // 4 models' parameters, 2 models' gradients, 1/N each
            System.out.printf(java.util.Locale.ROOT, "ZeroTrainingTest PPO, %d ranks, stage 3 built partitioned: at "
                    + "most %,d bytes held while building the four models (bound %,d; built whole %,d), %,d while "
                    + "saving (largest group %,d; the whole model %,d)%n", ranks, f.get("build_max"), bound,
                    w.get("build_max"), f.get("save_max"), group, flat);
            assertTrue(f.get("build_max") <= bound, ranks + " ranks: " + f.get("build_max") + " bytes held building");
            assertTrue(w.get("build_max") >= 6 * flat, "built whole: four models and two gradients");
            assertTrue(f.get("save_max") <= group + 8192, ranks + " ranks: " + f.get("save_max") + " bytes held "
                    + "saving, more than one group of " + group);
            assertTrue(group < flat / 2, "the largest group is a fraction of the model");
        }
    }
}
