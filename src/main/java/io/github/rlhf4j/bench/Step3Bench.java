package io.github.rlhf4j.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.data.PromptBatch;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.OptConfig;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.rlhf.Experience;
import io.github.rlhf4j.rlhf.Optimized;
import io.github.rlhf4j.rlhf.PpoConfig;
import io.github.rlhf4j.rlhf.PpoTrainer;
import io.github.rlhf4j.rlhf.RlhfEngine;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * DeepSpeed-Chat's step-3 benchmark: random-weight actor, reference, critic and reward model of the given OPT shapes,
 * prompts of exactly P random tokens, answers of exactly A sampled tokens (EOS ignored), one PPO epoch on each
 * experience batch; warm-up iterations, then timed ones. An iteration is what DS-Chat's training loop does per batch:
 * generate, score (the experience forwards), one actor step, one critic step. The split per phase comes from
 * {@link PpoTrainer#phaseTimes()}; "other" is the rest of the iteration (drawing prompts, filtering answers, host-side
 * glue). Settings are DS-Chat's defaults: actor lr 9.65e-6, critic lr 5e-6, weight decay 0, cosine schedule with 100
 * warm-up steps over the epoch, AdamW betas (0.9, 0.95), gradient clipping at 1.0, sampling at temperature 1, top-p 1.
 */
public final class Step3Bench {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** DS-Chat's step-3 learning rates. */
    public static final double ACTOR_LR = 9.65e-6, CRITIC_LR = 5e-6;

    private Step3Bench() {}

    /**
     * What to run. {@code threads} 0: the backend's default. {@code cpuGflops}/{@code cpuGbs}: this CPU's ceilings
     * for its floor (GFLOP/s of a measured f32 GEMM; GB/s, 0 when unknown). {@code run}: the performance.md run these
     * settings reproduce, or null.
     */
    public record Settings(String actor, String critic, int batch, int promptLen, int answerLen, int iters, int warmup,
                           String device, int threads, long seed, double cpuGflops, double cpuGbs, Step3Run run) {
        public Settings {
            if (batch < 1) throw new IllegalArgumentException("--batch " + batch + " must be >= 1");
            if (promptLen < 1) throw new IllegalArgumentException("--prompt-len " + promptLen + " must be >= 1");
            if (answerLen < 2)
                throw new IllegalArgumentException("--answer-len " + answerLen + " must be >= 2 (DS-Chat drops answers "
                        + "of one token)");
            if (iters < 1) throw new IllegalArgumentException("--iters " + iters + " must be >= 1");
            if (warmup < 0) throw new IllegalArgumentException("--warmup " + warmup + " must be >= 0");
            if (threads < 0) throw new IllegalArgumentException("--threads " + threads + " must be >= 0");
            if (!(cpuGflops > 0)) throw new IllegalArgumentException("--peak-gflops " + cpuGflops + " must be > 0");
            if (!(cpuGbs >= 0)) throw new IllegalArgumentException("--peak-gbs " + cpuGbs + " must be >= 0");
        }
    }

    /** Seconds of one iteration by phase; {@link #other} is the iteration's time not charged to a phase. */
    public record Phases(double generation, double experience, double actorTraining, double criticTraining,
                         double other) {
        public double total() {
            return generation + experience + actorTraining + criticTraining + other;
        }
    }

    /**
     * The outcome: the models' shapes and sizes, the start-up seconds (allocating and initialising the four models
     * and two optimizers), each timed iteration's seconds and split, and the median iteration.
     */
    public record Result(Settings settings, String deviceName, int threads, OptConfig actorConfig,
                         OptConfig criticConfig, long actorParams, long criticParams, double initSeconds,
                         double[] timedSeconds, Phases[] phases, int medianIndex) {
        /** The median iteration's split (it sums to the median iteration's time; the lower middle of an even count). */
        public Phases median() {
            return phases[medianIndex];
        }

        public double iterationSeconds() {
            return timedSeconds[medianIndex];
        }

        public double sequencesPerSecond() {
            return settings.batch() / iterationSeconds();
        }

        /** Prompt and answer tokens per second. */
        public double tokensPerSecond() {
            return (double) settings.batch() * (settings.promptLen() + settings.answerLen()) / iterationSeconds();
        }

        /** DS-Chat's extrapolation: ceil(264292 / B) x median iteration + start-up. */
        public double hoursPerEpoch() {
            return (Step3Floor.iterationsPerEpoch(settings.batch()) * iterationSeconds() + initSeconds) / 3600;
        }

        public boolean onCpu() {
            return deviceName.startsWith("cpu");
        }

        public Step3Floor floor(Step3Floor.Machine m) {
            Settings s = settings;
            return Step3Floor.of(m, Step3Floor.Shape.causalLm(actorConfig), Step3Floor.Shape.rewardModel(criticConfig),
                    s.batch(), s.promptLen(), s.answerLen(), s.run() != null && s.run().loraActor());
        }

        /** The floors printed beside this run: the H100's, and this CPU's when it ran on the CPU. */
        public List<Step3Floor> floors() {
            List<Step3Floor> out = new ArrayList<>();
            out.add(floor(Step3Floor.Machine.H100));
            if (onCpu()) out.add(floor(Step3Floor.Machine.cpu(settings.cpuGflops(), settings.cpuGbs())));
            return out;
        }
    }

    /** Builds the models, runs the iterations and returns the figures; a line per iteration goes to {@code log}. */
    public static Result run(Settings s, PrintWriter log) {
        if (s.run() != null && s.run().loraActor())
            throw new IllegalArgumentException("--run " + s.run() + " trains the actor through LoRA adapters, which "
                    + "this benchmark does not build yet");
        Device dev = Device.parse(s.device());
        if (s.threads() > 0) dev.setNumThreads(s.threads());
        OptConfig ac = OptPresets.config(s.actor(), true), cc = OptPresets.config(s.critic(), true);
        ConfigJson aj = OptPresets.json(s.actor());
        int pad = aj.integer("pad_token_id", 1), eos = aj.integer("eos_token_id", 2);
        int total = s.promptLen() + s.answerLen();
        if (total > ac.maxPositions() || total > cc.maxPositions())
            throw new IllegalArgumentException("--prompt-len " + s.promptLen() + " + --answer-len " + s.answerLen()
                    + " = " + total + " exceeds the models' " + Math.min(ac.maxPositions(), cc.maxPositions())
                    + " positions");
        long t0 = System.nanoTime();
        CausalLM actor = CausalLM.of(ac), ref = CausalLM.of(ac);
        RewardModel critic = RewardModel.of(cc), reward = RewardModel.of(cc);
        // the reference starts as the actor and the reward model as the critic, as in DS-Chat: same seeds
        ParameterStore actorStore = ParameterStore.allocate(actor, dev, DType.F32, s.seed(), true);
        ParameterStore refStore = null, criticStore = null, rewardStore = null;
        RlhfEngine engine;
        try {
            refStore = ParameterStore.allocate(ref, dev, DType.F32, s.seed(), false);
            criticStore = ParameterStore.allocate(critic, dev, DType.F32, s.seed() + 1, true);
            rewardStore = ParameterStore.allocate(reward, dev, DType.F32, s.seed() + 1, false);
            LrSchedule schedule = LrSchedule.cosine(100, Math.max(100, Step3Floor.iterationsPerEpoch(s.batch())));
            engine = new RlhfEngine(actor, new Optimized(actorStore, new Optimized.Settings(ACTOR_LR, 0, schedule, 1.0)),
                    ref, refStore, critic, new Optimized(criticStore, new Optimized.Settings(CRITIC_LR, 0, schedule,
                    1.0)), reward, rewardStore, false);
        } catch (RuntimeException e) {
            for (ParameterStore p : new ParameterStore[] {actorStore, refStore, criticStore, rewardStore})
                if (p != null) p.close();
            throw e;
        }
        try (engine) {
            GenerationConfig gen = new GenerationConfig(s.answerLen(), true, 1.0, 0, 1.0, 1.0, new int[] {eos}, pad,
                    true, s.seed());
            PpoTrainer trainer = new PpoTrainer(engine, PpoConfig.dsChat(gen));
            dev.synchronize();
            double init = (System.nanoTime() - t0) / 1e9;
            log.printf(Locale.ROOT, "models ready in %.2f s: actor %s, critic %s on %s%n", init, OptPresets.label(s.actor()),
                    OptPresets.label(s.critic()), dev);
            log.flush();
            SplittableRandom rng = new SplittableRandom(s.seed());
            double[] times = new double[s.iters()];
            Phases[] phases = new Phases[s.iters()];
            for (int i = 0; i < s.warmup() + s.iters(); i++) {
                trainer.resetPhaseTimes();
                long start = System.nanoTime();
                PromptBatch prompts = randomPrompts(rng, s.batch(), s.promptLen(), ac.vocabSize(), pad, eos);
                try (Experience exp = trainer.generateExperience(prompts)) {
                    if (exp.stats().rows() != s.batch() || exp.seq().size(1) != total)
                        throw new IllegalStateException("generation gave " + exp.stats().rows() + " rows of "
                                + exp.seq().size(1) + " tokens, not " + s.batch() + " of " + total);
                    trainer.trainRlhf(exp);
                }
                dev.synchronize();
                double it = (System.nanoTime() - start) / 1e9;
                PpoTrainer.PhaseTimes pt = trainer.phaseTimes();
                Phases ph = new Phases(pt.generation(), pt.experience(), pt.actorTraining(), pt.criticTraining(),
                        it - pt.total());
                boolean warm = i < s.warmup();
                if (!warm) {
                    times[i - s.warmup()] = it;
                    phases[i - s.warmup()] = ph;
                }
                log.printf(Locale.ROOT, "%s %d/%d: %.3f s (generation %.3f, experience %.3f, actor %.3f, critic %.3f, "
                                + "other %.3f)%n", warm ? "warm-up" : "iteration", warm ? i + 1 : i - s.warmup() + 1,
                        warm ? s.warmup() : s.iters(), it, ph.generation(), ph.experience(), ph.actorTraining(),
                        ph.criticTraining(), ph.other());
                log.flush();
            }
            Integer[] order = new Integer[times.length];
            for (int i = 0; i < order.length; i++) order[i] = i;
            Arrays.sort(order, (a, b) -> Double.compare(times[a], times[b]));
            return new Result(s, dev.toString(), s.threads(), ac, cc, actor.parameterCount(), critic.parameterCount(),
                    init, times, phases, order[(order.length - 1) / 2]);
        }
    }

    /** B prompts of exactly P tokens, none of them a special token (0-3: bos, pad, eos, unk), so none is padding. */
    static PromptBatch randomPrompts(SplittableRandom rng, int rows, int cols, int vocab, int pad, int eos) {
        int lo = 4, hi = Math.min(vocab, 50265); // OPT's tokenizer has 50265 tokens; the rest of its 50272 are filler
        if (hi <= lo) throw new IllegalArgumentException("vocabulary of " + vocab + " leaves no ordinary token");
        int[] ids = new int[rows * cols], mask = new int[rows * cols];
        for (int i = 0; i < ids.length; i++) {
            int t;
            do t = rng.nextInt(lo, hi); while (t == pad || t == eos);
            ids[i] = t;
            mask[i] = 1;
        }
        return new PromptBatch(rows, cols, ids, mask);
    }

    // ---- the table ---------------------------------------------------------------------------------------------------

    /** Prints DS-Chat's timing table for {@code r}. */
    public static void printTable(Result r, PrintWriter out) {
        Settings s = r.settings();
        out.println("rlhf4j bench step3: one DeepSpeed-Chat step-3 iteration (generate, experience forwards, actor step, "
                + "critic step)");
        if (s.run() != null)
            out.printf(Locale.ROOT, "  run %s of performance.md (DSC-1GPU)%n", s.run());
        out.printf(Locale.ROOT, "  actor  %-9s %,15d parameters (OPT causal LM, random init, dropout 0)%n",
                OptPresets.label(s.actor()), r.actorParams());
        out.printf(Locale.ROOT, "  critic %-9s %,15d parameters (OPT base + value head; reward model the same)%n",
                OptPresets.label(s.critic()), r.criticParams());
        out.printf(Locale.ROOT, "  batch %d, prompt %d + answer %d tokens (EOS ignored), 1 PPO epoch, sampling "
                + "(temperature 1, top-p 1)%n", s.batch(), s.promptLen(), s.answerLen());
        String threads = r.threads() > 0 ? r.threads() + " threads" : "default threads";
        out.printf(Locale.ROOT, "  device %s, %s, %s%n", r.deviceName(), threads, r.onCpu()
                ? "f32 weights and compute"
                : "f32 weights and compute (the model layer has no bf16 compute yet; the floor assumes bf16)");
        StringBuilder its = new StringBuilder();
        for (double t : r.timedSeconds()) its.append(its.isEmpty() ? "" : ", ").append(fmt(t));
        out.printf(Locale.ROOT, "  start-up %.2f s; %d warm-up + %d timed iterations (s): %s%n", r.initSeconds(),
                s.warmup(), s.iters(), its);
        out.println();
        var floors = r.floors();
        StringBuilder head = new StringBuilder(String.format(Locale.ROOT, "%-22s %10s %7s", "phase", "s/iter", "share"));
        for (Step3Floor f : floors)
            head.append(String.format(Locale.ROOT, " %12s %8s", f == floors.get(0) ? "floor H100" : "floor CPU",
                    "% floor"));
        out.println(head);
        Phases m = r.median();
        double it = r.iterationSeconds();
        row(out, "generation", m.generation(), it, floors.stream().map(Step3Floor::generation).toList());
        row(out, "experience forwards", m.experience(), it, floors.stream().map(Step3Floor::experience).toList());
        row(out, "actor training", m.actorTraining(), it, floors.stream().map(Step3Floor::actorTraining).toList());
        row(out, "critic training", m.criticTraining(), it, floors.stream().map(Step3Floor::criticTraining).toList());
        row(out, "other", m.other(), it, floors.stream().map(f -> 0.0).toList());
        row(out, "iteration (median)", it, it, floors.stream().map(Step3Floor::iteration).toList());
        out.println();
        out.printf(Locale.ROOT, "sequences/s        %s%n", fmt(r.sequencesPerSecond()));
        out.printf(Locale.ROOT, "tokens/s           %s (prompt + answer)%n", fmt(r.tokensPerSecond()));
        out.printf(Locale.ROOT, "hours/epoch        %s = ceil(264292 / %d) x %s s + %.1f s start-up%n",
                fmt(r.hoursPerEpoch()), s.batch(), fmt(it), r.initSeconds());
        Step3Floor h = floors.get(0);
        out.printf(Locale.ROOT, "achieved           generation %s, training %s, effective %s (FLOPs of the floor "
                        + "model over the measured time)%n", rate(h.generationFlops() / m.generation()),
                rate(h.trainingFlops() / (m.actorTraining() + m.criticTraining())), rate(h.totalFlops() / it));
        for (Step3Floor f : floors)
            out.printf(Locale.ROOT, "floor              %s: %s s/iter = %s ms/seq, %s h/epoch; this run reaches %s "
                            + "of it%n", f.machine().name(), fmt(f.iteration()), fmt(f.msPerSequence()),
                    fmt(f.hoursPerEpoch()), pct(f.iteration() / it));
        if (s.run() != null)
            out.printf(Locale.ROOT, "published floor    %s (performance.md, H100): %.1f ms/seq, %.2f h/epoch%n",
                    s.run(), s.run().floorMsPerSeq(), s.run().floorHoursPerEpoch());
        String pub = Step3Run.published(s.actor(), s.critic());
        out.printf("DeepSpeed-Chat     %s%n", pub != null ? "(published) " + pub
                : "published no figure for these shapes (only OPT-1.3B and OPT-6.7B actors with an OPT-350M critic)");
        out.flush();
    }

    private static void row(PrintWriter out, String name, double secs, double iter, List<Double> floors) {
        StringBuilder b = new StringBuilder(String.format(Locale.ROOT, "%-22s %10s %6.1f%%", name, fmt(secs),
                100 * secs / iter));
        for (double f : floors)
            b.append(f > 0 ? String.format(Locale.ROOT, " %12s %8s", fmt(f), pct(f / secs))
                    : String.format(Locale.ROOT, " %12s %8s", "-", "-"));
        out.println(b);
    }

    /** Four significant digits, in plain notation where that reads well. */
    static String fmt(double v) {
        if (v == 0) return "0";
        double a = Math.abs(v);
        if (a >= 1e5 || a < 1e-4) return String.format(Locale.ROOT, "%.3e", v);
        int digits = Math.max(0, 3 - (int) Math.floor(Math.log10(a)));
        return String.format(Locale.ROOT, "%." + digits + "f", v);
    }

    private static String pct(double fraction) {
        double p = 100 * fraction;
        return p >= 0.1 ? String.format(Locale.ROOT, "%.1f%%", p) : String.format(Locale.ROOT, "%.2g%%", p);
    }

    private static String rate(double flopsPerSecond) {
        return flopsPerSecond >= 1e12 ? String.format(Locale.ROOT, "%.1f TFLOP/s", flopsPerSecond / 1e12)
                : String.format(Locale.ROOT, "%.1f GFLOP/s", flopsPerSecond / 1e9);
    }

    // ---- JSON ----------------------------------------------------------------------------------------------------

    /** The figures as one JSON object (what bench/step3.sh records); the peer prints the same keys. */
    public static ObjectNode json(Result r) {
        Settings s = r.settings();
        ObjectNode o = JSON.createObjectNode();
        o.put("impl", "rlhf4j");
        o.put("actor", OptPresets.label(s.actor()));
        o.put("critic", OptPresets.label(s.critic()));
        o.put("actor_params", r.actorParams());
        o.put("critic_params", r.criticParams());
        o.put("batch", s.batch());
        o.put("prompt_len", s.promptLen());
        o.put("answer_len", s.answerLen());
        o.put("device", r.deviceName());
        o.put("threads", r.threads());
        o.put("dtype", "f32");
        o.put("warmup", s.warmup());
        o.put("iters", s.iters());
        if (s.run() != null) o.put("run", s.run().name());
        o.put("init_s", r.initSeconds());
        ArrayNode its = o.putArray("iter_times_s");
        for (double t : r.timedSeconds()) its.add(t);
        o.put("iter_s", r.iterationSeconds());
        Phases m = r.median();
        ObjectNode ph = o.putObject("phases_s");
        ph.put("generation", m.generation());
        ph.put("experience", m.experience());
        ph.put("actor_training", m.actorTraining());
        ph.put("critic_training", m.criticTraining());
        ph.put("other", m.other());
        o.put("sequences_per_s", r.sequencesPerSecond());
        o.put("tokens_per_s", r.tokensPerSecond());
        o.put("hours_per_epoch", r.hoursPerEpoch());
        for (Step3Floor f : r.floors()) {
            ObjectNode fl = o.putObject(f.machine() == Step3Floor.Machine.H100 ? "floor_h100" : "floor_cpu");
            fl.put("machine", f.machine().name());
            fl.put("iter_s", f.iteration());
            fl.put("ms_per_seq", f.msPerSequence());
            fl.put("hours_per_epoch", f.hoursPerEpoch());
            fl.put("fraction", f.iteration() / r.iterationSeconds());
        }
        return o;
    }
}
