package io.github.rlhf4j.cli;

import io.github.rlhf4j.bench.OptPresets;
import io.github.rlhf4j.bench.Step3Bench;
import io.github.rlhf4j.bench.Step3Plot;
import io.github.rlhf4j.bench.Step3Run;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code rlhf4j bench}: built-in benchmarks (the JMH ones live under bench/). */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Built-in benchmarks. step3: DeepSpeed-Chat's step-3 (PPO) iteration with random-weight OPT "
                + "models; step3-plot: draw a sweep of step3 results."},
        subcommands = {Bench.Step3.class, Bench.Step3PlotCommand.class, Bench.ZeroScaleCommand.class,
                Bench.DataParallelCommand.class, CommandLine.HelpCommand.class})
final class Bench implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    @Command(name = "step3", mixinStandardHelpOptions = true, sortOptions = false,
            description = {"DeepSpeed-Chat's step-3 benchmark: a random-weight OPT actor, reference, critic and reward "
                    + "model of the exact OPT shapes, prompts of exactly --prompt-len random tokens, answers of exactly "
                    + "--answer-len sampled tokens (EOS ignored), one PPO epoch; --warmup iterations, then --iters "
                    + "timed ones. Prints seconds per iteration split into generation, experience forwards, actor "
                    + "training, critic training and other; sequences/s, tokens/s, hours per epoch (ceil(264292 / B) "
                    + "x median iteration + start-up); the floor (performance.md) and the fraction of it reached; and "
                    + "DeepSpeed-Chat's published figure where there is one.",
                    "Models: tiny, opt-125m, opt-350m, opt-1.3b, opt-2.7b, opt-6.7b, opt-13b, opt-66b, or a config.json."},
            footer = {"", "Examples:",
                    "  bin/rlhf4j bench step3 --run cpu-tiny              (seconds on a laptop)",
                    "  bin/rlhf4j bench step3 --run cpu-125m --threads 2  (OPT-125M + OPT-125M, B 4, 64 + 64)",
                    "  bin/rlhf4j bench step3 --actor tiny --critic tiny --batch 4 --prompt-len 64 --answer-len 64",
                    "  bin/rlhf4j bench step3 --actor opt-125m --critic opt-125m --batch 4 --prompt-len 64 \\",
                    "      --answer-len 64 --threads 2 --iters 3 --warmup 1",
                    "  bin/rlhf4j bench step3 --run R3 --device cuda      (OPT-1.3B + OPT-350M, B 64, 256 + 256)",
                    "  bin/rlhf4j bench step3 --actor opt-1.3b --critic opt-350m --batch 64 --device cuda --iters 5"})
    static final class Step3 implements Callable<Integer> {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Option(names = "--run", paramLabel = "NAME", description = "A preset: R1..R6, the runs of performance.md's "
                + "H100 suite (--actor, --critic, --batch, 256 + 256 tokens, 2 warm-up iterations); cpu-tiny (tiny + "
                + "tiny) or cpu-125m (opt-125m + opt-125m), batch 4, 64 + 64 tokens, 1 warm-up iteration: sized for a "
                + "laptop CPU.")
        String run;

        @Option(names = "--actor", paramLabel = "MODEL", description = "Actor (and reference) shape (default: opt-1.3b).")
        String actor;

        @Option(names = "--critic", paramLabel = "MODEL", description = "Critic (and reward) shape (default: opt-350m).")
        String critic;

        @Option(names = "--batch", paramLabel = "B", description = "Generation = training batch (default: 64).")
        Integer batch;

        @Option(names = "--prompt-len", paramLabel = "P", description = "Prompt tokens (default: 256).")
        Integer promptLen;

        @Option(names = "--answer-len", paramLabel = "A", description = "Answer tokens (default: 256).")
        Integer answerLen;

        @Option(names = "--iters", defaultValue = "3", paramLabel = "N", description = "Timed iterations; the table "
                + "shows the median (default: ${DEFAULT-VALUE}).")
        int iters;

        @Option(names = "--warmup", paramLabel = "N", description = "Untimed iterations first (default: 2).")
        Integer warmup;

        @Option(names = "--device", defaultValue = "cpu", paramLabel = "DEV", description = "cpu, cuda or cuda:N "
                + "(default: ${DEFAULT-VALUE}).")
        String device;

        @Option(names = "--threads", defaultValue = "0", paramLabel = "N", description = "CPU threads (0: the "
                + "backend's default).")
        int threads;

        @Option(names = "--seed", defaultValue = "1", paramLabel = "N", description = "Weights, prompts and sampling "
                + "(default: ${DEFAULT-VALUE}).")
        long seed;

        @Option(names = "--peak-gflops", defaultValue = "232", paramLabel = "G", description = "This CPU's f32 peak "
                + "for its floor (default: ${DEFAULT-VALUE}, the 2-core AVX-512 VM of bench/RESULTS.md: 2 x the GEMM "
                + "micro-kernel's measured 116 GFLOP/s per core; its n=1024 GEMM reaches 170).")
        double peakGflops;

        @Option(names = "--peak-gbs", defaultValue = "0", paramLabel = "GB/S", description = "This CPU's memory "
                + "bandwidth for its floor (0: unknown; the CPU floor then counts FLOPs only).")
        double peakGbs;

        @Option(names = "--json", paramLabel = "FILE", description = "Also write the figures as one JSON object.")
        Path json;

        @Override
        public Integer call() {
            CommandLine cmd = spec.commandLine();
            Preset r = run == null ? null : Preset.parse(run);
            if (r != null && (actor != null || critic != null || batch != null || promptLen != null
                    || answerLen != null))
                throw new CommandLine.ParameterException(cmd, "--run " + r.name() + " sets the models, batch and "
                        + "lengths; leave out --actor, --critic, --batch, --prompt-len and --answer-len");
            for (String m : new String[] {actor, critic})
                if (m != null && OptPresets.canonical(m) == null && !Files.isRegularFile(Path.of(m)))
                    throw new CommandLine.ParameterException(cmd, "model '" + m + "': expected "
                            + String.join(", ", OptPresets.NAMES) + " or a config.json file");
            Step3Bench.Settings s = new Step3Bench.Settings(
                    r != null ? r.actor() : actor != null ? actor : "opt-1.3b",
                    r != null ? r.critic() : critic != null ? critic : "opt-350m",
                    r != null ? r.batch() : batch != null ? batch : 64,
                    r != null ? r.promptLen() : promptLen != null ? promptLen : 256,
                    r != null ? r.answerLen() : answerLen != null ? answerLen : 256,
                    iters, warmup != null ? warmup : r != null ? r.warmup() : Step3Run.WARMUP, device, threads, seed,
                    peakGflops, peakGbs, r != null ? r.run() : null);
            PrintWriter out = cmd.getOut();
            Step3Bench.Result result = Step3Bench.run(s, out);
            out.println();
            Step3Bench.printTable(result, out);
            if (json != null) writeAtomically(json, Step3Bench.json(result).toString() + "\n");
            return 0;
        }
    }

    /** What {@code --run} sets: a run of the H100 suite ({@code run} non-null) or a CPU-sized one. */
    record Preset(String name, String actor, String critic, int batch, int promptLen, int answerLen, int warmup,
                  Step3Run run) {
        static Preset parse(String name) {
            String n = name.trim().toLowerCase(java.util.Locale.ROOT);
            if (n.equals("cpu-tiny")) return new Preset("cpu-tiny", "tiny", "tiny", 4, 64, 64, 1, null);
            if (n.equals("cpu-125m")) return new Preset("cpu-125m", "opt-125m", "opt-125m", 4, 64, 64, 1, null);
            Step3Run r;
            try {
                r = Step3Run.valueOf(n.toUpperCase(java.util.Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--run " + name + ": expected R1, R2, R3, R4, R5, R6, cpu-tiny or "
                        + "cpu-125m");
            }
            return new Preset(r.name(), r.actor(), r.critic(), r.batch(), Step3Run.PROMPT_LEN, Step3Run.ANSWER_LEN,
                    Step3Run.WARMUP, r);
        }
    }

    @Command(name = "step3-plot", mixinStandardHelpOptions = true,
            description = {"Draws seconds per iteration against answer length and against batch, for each "
                    + "implementation, from JSON lines of `bench step3 --json` and bench/peers/step3_torch.py."},
            footer = {"", "Example:", "  bin/rlhf4j bench step3-plot bench/step3-sweep.jsonl --out bench/step3.png"})
    static final class Step3PlotCommand implements Callable<Integer> {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Parameters(paramLabel = "JSONL", description = "Points: impl, batch, answer_len, iter_s per line.")
        Path in;

        @Option(names = "--out", required = true, paramLabel = "PNG")
        Path out;

        @Option(names = "--title", paramLabel = "TEXT", defaultValue = "step 3: rlhf4j vs PyTorch",
                description = "(default: ${DEFAULT-VALUE})")
        String title;

        @Option(names = "--stat", paramLabel = "median|min", defaultValue = "median", description = "Each run's "
                + "median iteration (the table's figure) or its fastest timed iteration (the least disturbed on a "
                + "shared machine) (default: ${DEFAULT-VALUE}).")
        String stat;

        @Override
        public Integer call() {
            if (!Files.isRegularFile(in))
                throw new CommandLine.ParameterException(spec.commandLine(), in + ": no such file");
            Step3Plot.Stat st = switch (stat.trim().toLowerCase(java.util.Locale.ROOT)) {
                case "median" -> Step3Plot.Stat.MEDIAN;
                case "min" -> Step3Plot.Stat.MIN;
                default -> throw new CommandLine.ParameterException(spec.commandLine(), "--stat " + stat
                        + ": expected median or min");
            };
            var points = Step3Plot.read(in, st);
            Step3Plot.draw(points, title, out);
            spec.commandLine().getOut().printf("%s: %d points%n", out, points.size());
            spec.commandLine().getOut().flush();
            return 0;
        }
    }

    @Command(name = "zero-scale", mixinStandardHelpOptions = true, sortOptions = false,
            description = {"ZeRO on paper: per-GPU model-state memory at stages 0-3 and one training step's "
                    + "communication against the compute floor, from the partitioner's plan for the model's real "
                    + "layers (nothing allocated). Default: OPT-13B on 8 GPUs (one node) and OPT-66B on 16 (two), then "
                    + "step 3 per GPU for deploy/'s three set-ups, in fp32 as rlhf4j trains."},
            footer = {"", "Examples:", "  bin/rlhf4j bench zero-scale",
                    "  bin/rlhf4j bench zero-scale --model opt-6.7b --gpus 4 --tokens-per-gpu 4096"})
    static final class ZeroScaleCommand implements Callable<Integer> {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Option(names = "--model", paramLabel = "M", description = "An OPT preset or config.json (default: the two "
                + "set-ups above).")
        String model;

        @Option(names = "--gpus", paramLabel = "N", defaultValue = "8", description = "(default: ${DEFAULT-VALUE})")
        int gpus;

        @Option(names = "--gpus-per-node", paramLabel = "N", defaultValue = "8", description = "(default: ${DEFAULT-VALUE})")
        int perNode;

        @Option(names = "--tokens-per-gpu", paramLabel = "T", defaultValue = "8192",
                description = "Tokens each GPU trains on per step (default: ${DEFAULT-VALUE}: 16 x 512).")
        long tokens;

        @Override
        public Integer call() {
            if (gpus < 1 || perNode < 1 || tokens < 1)
                throw new CommandLine.ParameterException(spec.commandLine(), "--gpus, --gpus-per-node and "
                        + "--tokens-per-gpu must be >= 1");
            java.util.List<io.github.rlhf4j.dist.ZeroScale.Row> rows = new java.util.ArrayList<>();
            if (model == null) {
                rows.addAll(io.github.rlhf4j.dist.ZeroScale.rows("opt-13b", 8, 8, tokens));
                rows.addAll(io.github.rlhf4j.dist.ZeroScale.rows("opt-66b", 16, 8, tokens));
            } else {
                rows.addAll(io.github.rlhf4j.dist.ZeroScale.rows(model, gpus, perNode, tokens));
            }
            spec.commandLine().getOut().print(io.github.rlhf4j.dist.ZeroScale.table(rows, tokens));
            if (model == null) { // and step 3 of deploy/'s three set-ups, as rlhf4j runs it
                spec.commandLine().getOut().println();
                spec.commandLine().getOut().print(io.github.rlhf4j.dist.ZeroScale.step3Table(
                        io.github.rlhf4j.dist.ZeroScale.deploySetups().stream().map(io.github.rlhf4j.dist.ZeroScale::step3)
                                .toList()));
            }
            spec.commandLine().getOut().flush();
            return 0;
        }
    }

    @Command(name = "data-parallel", mixinStandardHelpOptions = true, sortOptions = false,
            description = {"Data-parallel training steps under ZeRO over the ranks a launcher started (run it under "
                    + "mpirun; alone it is one process): a random-weight OPT causal LM, each rank --batch random "
                    + "sequences of --seq-len tokens, forward, backward and the optimizer's collectives and AdamW "
                    + "step. Prints each timed step (the slowest rank's), the median, tokens/s over all ranks, the "
                    + "bytes this rank sent per step and the model states rank 0 holds. bench/dp.sh runs it against "
                    + "PyTorch's DDP, ZeroRedundancyOptimizer and FSDP."},
            footer = {"", "Examples:",
                    "  mpirun -np 2 bin/rlhf4j bench data-parallel --model opt-125m --zero-stage 3 --threads 1",
                    "  bench/dp.sh --model tiny                   all four stages, rlhf4j and PyTorch"})
    static final class DataParallelCommand implements Callable<Integer> {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Option(names = "--model", defaultValue = "opt-125m", paramLabel = "M", description = "An OPT preset or "
                + "config.json (default: ${DEFAULT-VALUE}).")
        String model;

        @Option(names = "--batch", defaultValue = "2", paramLabel = "B", description = "Sequences per rank "
                + "(default: ${DEFAULT-VALUE}).")
        int batch;

        @Option(names = "--seq-len", defaultValue = "128", paramLabel = "T", description = "(default: ${DEFAULT-VALUE})")
        int seqLen;

        @Option(names = "--zero-stage", defaultValue = "0", paramLabel = "N", description = "(default: ${DEFAULT-VALUE})")
        int zeroStage;

        @Option(names = "--steps", defaultValue = "5", paramLabel = "N", description = "Timed steps (default: "
                + "${DEFAULT-VALUE}).")
        int steps;

        @Option(names = "--warmup", defaultValue = "1", paramLabel = "N", description = "(default: ${DEFAULT-VALUE})")
        int warmup;

        @Option(names = "--threads", defaultValue = "1", paramLabel = "N", description = "CPU threads per rank "
                + "(default: ${DEFAULT-VALUE}).")
        int threads;

        @Option(names = "--seed", defaultValue = "1", paramLabel = "N", description = "(default: ${DEFAULT-VALUE})")
        long seed;

        @Option(names = "--json", paramLabel = "FILE", description = "Rank 0 also writes the figures as one JSON "
                + "object.")
        Path json;

        @Override
        public Integer call() {
            CommandLine cmd = spec.commandLine();
            if (OptPresets.canonical(model) == null && !Files.isRegularFile(Path.of(model)))
                throw new CommandLine.ParameterException(cmd, "--model " + model + ": expected "
                        + String.join(", ", OptPresets.NAMES) + " or a config.json file");
            io.github.rlhf4j.bench.DataParallelBench.Settings s;
            try {
                s = new io.github.rlhf4j.bench.DataParallelBench.Settings(model, batch, seqLen, zeroStage, steps,
                        warmup, threads, seed);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.ParameterException(cmd, e.getMessage());
            }
            try (io.github.rlhf4j.dist.Communicator comm = io.github.rlhf4j.dist.Communicator.fromEnvironment()) {
                PrintWriter out = comm.rank() == 0 ? cmd.getOut() : new PrintWriter(java.io.Writer.nullWriter());
                var r = io.github.rlhf4j.bench.DataParallelBench.run(s, comm, out);
                out.printf(java.util.Locale.ROOT, "rlhf4j data parallel: %s (%,d parameters), %d rank(s) x %d x %d "
                        + "tokens, ZeRO stage %d, %d thread(s) per rank: %.1f ms per step (median of %d), %,.0f "
                        + "tokens/s, %,d bytes sent per step per rank, %,d bytes of model states on rank 0%n",
                        OptPresets.label(model), r.parameters(), r.world(), batch, seqLen, zeroStage, threads,
                        r.medianMs(), steps, r.tokensPerSecond(), r.bytesPerStep(), r.modelStatesBytes());
                out.flush();
                if (json != null && comm.rank() == 0) writeAtomically(json, r.json().toString() + "\n");
            }
            return 0;
        }
    }

    private static void writeAtomically(Path file, String text) {
        Path abs = file.toAbsolutePath();
        Path tmp = abs.resolveSibling("." + abs.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        try {
            if (abs.getParent() != null) Files.createDirectories(abs.getParent());
            Files.writeString(tmp, text);
            Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }
}
