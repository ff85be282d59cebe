package io.github.rlhf4j.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.dist.Communicator;
import io.github.rlhf4j.dist.Zero;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.OptConfig;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.rlhf.Optimized;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;

/**
 * Data-parallel training steps under ZeRO, over the ranks the launcher started (mpirun, srun): a random-weight OPT
 * causal LM, each rank a batch of {@code batch} random sequences of {@code seqLen} tokens, cross-entropy, backward,
 * the optimizer's collectives and AdamW step ({@link Optimized} at {@code zeroStage}). {@code warmup} untimed steps,
 * then {@code steps} timed ones, each between two barriers so a step's time is the slowest rank's. The peer is
 * bench/peers/dp_torch.py (PyTorch DDP, ZeroRedundancyOptimizer and FSDP over gloo), run by bench/dp.sh.
 */
public final class DataParallelBench {
    private static final ObjectMapper JSON = new ObjectMapper();

    public record Settings(String model, int batch, int seqLen, int zeroStage, int steps, int warmup, int threads,
                           long seed) {
        public Settings {
            if (batch < 1 || seqLen < 2 || steps < 1 || warmup < 0)
                throw new IllegalArgumentException("--batch >= 1, --seq-len >= 2, --steps >= 1, --warmup >= 0");
            if (zeroStage < 0 || zeroStage > 3)
                throw new IllegalArgumentException("--zero-stage " + zeroStage + ": 0, 1, 2 or 3");
        }
    }

    /**
     * @param msPerStep the timed steps, in milliseconds, slowest rank's
     * @param bytesPerStep what this rank sent per step (the communicator's count)
     * @param modelStatesBytes what rank 0 holds between steps: parameters, gradients, optimizer state
     */
    public record Result(Settings settings, int world, long parameters, double[] msPerStep, long bytesPerStep,
                         long modelStatesBytes) {
        public double medianMs() {
            double[] s = msPerStep.clone();
            Arrays.sort(s);
            return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
        }

        /** Tokens trained per second over all ranks. */
        public double tokensPerSecond() {
            return (double) world * settings.batch() * settings.seqLen() / (medianMs() / 1e3);
        }

        public ObjectNode json() {
            ObjectNode o = JSON.createObjectNode();
            o.put("impl", "rlhf4j");
            o.put("model", settings.model());
            o.put("world", world);
            o.put("zero_stage", settings.zeroStage());
            o.put("batch_per_rank", settings.batch());
            o.put("seq_len", settings.seqLen());
            o.put("threads_per_rank", settings.threads());
            o.put("parameters", parameters);
            o.put("ms_per_step", medianMs());
            o.put("tokens_per_s", tokensPerSecond());
            o.put("bytes_sent_per_step", bytesPerStep);
            o.put("model_states_bytes_rank0", modelStatesBytes);
            var a = o.putArray("ms_each");
            for (double d : msPerStep) a.add(d);
            return o;
        }
    }

    private DataParallelBench() {}

    public static Result run(Settings s, Communicator comm, PrintWriter log) {
        Device dev = Device.cpu();
        if (s.threads() > 0) dev.setNumThreads(s.threads());
        int world = comm.worldSize(), rank = comm.rank();
        OptConfig config = OptPresets.config(s.model(), true);
        comm.checkSame("benchmark settings", s.toString());
        CausalLM model = CausalLM.of(config);
        long before = dev.memory().live();
        ParameterStore store = ParameterStore.allocate(model, dev, DType.F32, s.seed(), true,
                Zero.layout(world, world > 1 ? s.zeroStage() : 0));
        int vocab = config.vocabSize();
        double[] ms = new double[s.steps()];
        long sent;
        long states;
        try (store; Optimized opt = new Optimized(store, new Optimized.Settings(1e-4, 0.0, LrSchedule.constant(0),
                1.0), comm, s.zeroStage())) {
            model.train(true);
            Random rng = new Random(s.seed() * 1000 + rank);
            long sent0 = 0;
            for (int i = 0; i < s.warmup() + s.steps(); i++) {
                int[] ids = new int[s.batch() * s.seqLen()], targets = new int[ids.length];
                for (int k = 0; k < ids.length; k++) {
                    ids[k] = rng.nextInt(vocab);
                    targets[k] = k % s.seqLen() == s.seqLen() - 1 ? -100 : rng.nextInt(vocab);
                }
                if (i == s.warmup()) sent0 = comm.bytesMoved().totalBytes();
                comm.barrier();
                long t0 = System.nanoTime();
                try (Scope sc = Scope.open(dev)) {
                    Tensor loss = Functional.crossEntropy(model.forward(Tensor.ofInts(ids, s.batch(), s.seqLen())),
                            Tensor.ofInts(targets, s.batch(), s.seqLen()), -100);
                    loss.backward();
                    opt.step("data-parallel benchmark");
                }
                comm.barrier();
                double t = (System.nanoTime() - t0) / 1e6;
                if (i >= s.warmup()) {
                    ms[i - s.warmup()] = t;
                    log.printf(Locale.ROOT, "step %d: %.1f ms%n", i - s.warmup() + 1, t);
                    log.flush();
                }
            }
            // the barriers of the timed steps are not the optimizer's traffic
            sent = (comm.bytesMoved().totalBytes() - sent0) / s.steps();
            states = dev.memory().live() - before;
        }
        return new Result(s, world, model.parameterCount(), ms, sent, states);
    }
}
