package io.github.rlhf4j.rlhf;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.data.DataSplit;
import io.github.rlhf4j.data.Phase;
import io.github.rlhf4j.data.PromptSamples;
import io.github.rlhf4j.data.TextEncoder;
import io.github.rlhf4j.data.Tokenizer;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Locale;

/**
 * The embedded demo of {@code bin/rlhf4j train}: {@link DemoTask}'s data and tokenizer under
 * {@code out/demo-data}, a tiny GPT-2 trained from scratch through the three stages ({@code out/actor-models/demo},
 * {@code out/reward-models/demo}, {@code out/step3-models/demo}), then the held-out figures as a table and in
 * {@code out/summary.json}: the reward model's pairwise accuracy, the reward of each actor's greedy answers, and
 * the checker's accuracy on each actor's sampled answers (temperature 1, as PPO's own generation and {@code chat}
 * sample). The demonstrations are noisy and the comparisons reliable ({@link DemoTask#writeData}), so the SFT actor
 * answers right only part of the time and PPO has room to raise it.
 */
public final class Demo {
    /**
     * The demo's figures, {@code summary.json}'s keys; {@code skippedSteps} (optimizer steps skipped for a NaN or Inf
     * under {@code --skip-nonfinite-steps}, all stages) is written only when there were some.
     */
    public record Summary(double rmAccuracy, double sftReward, double ppoReward, double sftCheckerAccuracy,
                          double ppoCheckerAccuracy, long skippedSteps) {}

    /** Steps 1, 2 and 3's shares of the rows. */
    static final String SPLIT = "2,4,4";
    /** Sampled answers per held-out prompt for the checker's accuracy. */
    static final int CHECKER_SAMPLES = 4;

    private Demo() {}

    public static Summary run(Path out, DemoSettings s, PrintWriter log) {
        return run(out, s, Stages.RunOptions.NONE, log);
    }

    /** The demo with checkpoints, resume, NaN skipping and plots as {@code run} says. */
    public static Summary run(Path out, DemoSettings s, Stages.RunOptions run, PrintWriter log) {
        long t0 = System.nanoTime();
        Path data = out.resolve("demo-data/reverse.jsonl"), init = out.resolve("demo-data/init-model");
        DemoTask.writeData(data, s.rows(), s.seed(), SPLIT, s.demoCorrect());
        Path tokDir = out.resolve("demo-data/tokenizer");
        DemoTask.writeTokenizer(tokDir);
        try (HfModel random = HfModel.random(DemoTask.modelConfig(s.nEmbd(), s.nLayer(), s.nHead()), Device.cpu(),
                DType.F32, s.seed(), false)) {
            HfModel.save(random.model(), random.configJson(), init, tokDir, DType.F32, 5L << 30);
        }
        log.printf("demo: reverse-a-word task, %d rows in %s; a %d-layer GPT-2 (n_embd %d) from scratch%n", s.rows(),
                data, s.nLayer(), s.nEmbd());
        Stages.Data d = new Stages.Data(List.of(data), SPLIT, out.resolve("demo-data/cache"), s.seed());
        Path actorDir = out.resolve("actor-models/demo"), rmDir = out.resolve("reward-models/demo");
        Path step3 = out.resolve("step3-models/demo"), logs = out.resolve("logs");

        Stages.SftResult sft = Stages.sft(new Stages.SftSettings(d, init, false, s.maxSeqLen(),
                new Stages.Training(s.batch(), 1000, s.sftSteps(), "cosine", s.sftSteps() / 10), s.sftLr(), 0.0,
                actorDir, logs.resolve("step1.jsonl")), run, log);
        log.printf("demo: %d of step 2's rejected answers are now the SFT actor's own mistakes%n",
                DemoTask.useOwnMistakes(data, SPLIT, s.seed(), actorDir, s.maxAnswerSeqLen()));
        Stages.RewardResult rm = Stages.reward(new Stages.RewardSettings(d, actorDir, s.maxSeqLen(),
                new Stages.Training(s.batch(), 1000, s.rmSteps(), "cosine", s.rmSteps() / 10), s.rmLr(), 0.0, rmDir,
                logs.resolve("step2.jsonl")), run, log);
        Stages.PpoResult ppo = Stages.ppo(new Stages.PpoSettings(d, actorDir, rmDir, s.maxPromptSeqLen(),
                s.maxAnswerSeqLen(), new Stages.Training(s.batch(), 1000, s.ppoSteps(), s.ppoScheduler(), 0),
                s.actorLr(), s.criticLr(), 0.0, 0.0, 1, s.enableEma(), null, 27.8, s.temperature(), 1.0, s.klCtl(),
                step3, logs.resolve("step3.jsonl")), run, log);

        PromptSamples held;
        try (Tokenizer tok = Tokenizer.load(tokDir)) {
            held = PromptSamples.build(d.load().prompts(Phase.PPO, DataSplit.Part.EVAL), TextEncoder.dsChat(tok),
                    s.maxPromptSeqLen());
        }
        // rewards of the greedy answers; the checker on sampled ones (temperature 1, as PPO and chat sample), which
        // show what the actor has learnt to prefer rather than only its single likeliest answer
        Path ppoActor = step3.resolve("actor");
        var before = Stages.evaluatePrompts(actorDir, rmDir, held, s.maxAnswerSeqLen(), 0, 1.0, 0, DemoTask::check);
        var after = Stages.evaluatePrompts(ppoActor, rmDir, held, s.maxAnswerSeqLen(), 0, 1.0, 0, DemoTask::check);
        var beforeSampled = Stages.evaluatePrompts(actorDir, rmDir, held, s.maxAnswerSeqLen(), CHECKER_SAMPLES, 1.0,
                s.seed(), DemoTask::check);
        var afterSampled = Stages.evaluatePrompts(ppoActor, rmDir, held, s.maxAnswerSeqLen(), CHECKER_SAMPLES, 1.0,
                s.seed(), DemoTask::check);
        Summary sum = new Summary(rm.eval().accuracy(), before.reward(), after.reward(),
                beforeSampled.checkerAccuracy(), afterSampled.checkerAccuracy(),
                sft.skippedSteps() + rm.skippedSteps() + ppo.skippedSteps());
        log.printf(Locale.ROOT, "%nheld out: %d pairs (reward model), %d prompts (actors); rewards of greedy answers,"
                + " checker accuracy of sampled answers (temperature 1, %d per prompt); %.0f s in all%n",
                rm.eval().pairs(), held.size(), CHECKER_SAMPLES, (System.nanoTime() - t0) / 1e9);
        log.printf(Locale.ROOT, "| %-22s | %8s |%n|%s|%s|%n", "figure", "value", "-".repeat(24), "-".repeat(10));
        row(log, "rm_accuracy", sum.rmAccuracy());
        row(log, "sft_reward", sum.sftReward());
        row(log, "ppo_reward", sum.ppoReward());
        row(log, "sft_checker_accuracy", sum.sftCheckerAccuracy());
        row(log, "ppo_checker_accuracy", sum.ppoCheckerAccuracy());
        if (sum.skippedSteps() > 0) row(log, "skipped_steps", sum.skippedSteps());
        writeSummary(out.resolve("summary.json"), sum);
        log.printf("wrote %s; talk to the result: bin/rlhf4j chat --path %s%n", out.resolve("summary.json"),
                step3.resolve("actor"));
        log.flush();
        return sum;
    }

    private static void row(PrintWriter log, String name, double v) {
        log.printf(Locale.ROOT, "| %-22s | %8.4f |%n", name, v);
    }

    private static void put(ObjectNode o, String key, double v) {
        if (Double.isFinite(v)) o.put(key, v);
        else o.putNull(key); // JSON has no NaN (e.g. no held-out pairs)
    }

    /** summary.json, written beside and renamed into place. */
    static void writeSummary(Path file, Summary s) {
        ObjectMapper json = new ObjectMapper();
        ObjectNode o = json.createObjectNode();
        put(o, "rm_accuracy", s.rmAccuracy());
        put(o, "sft_reward", s.sftReward());
        put(o, "ppo_reward", s.ppoReward());
        put(o, "sft_checker_accuracy", s.sftCheckerAccuracy());
        put(o, "ppo_checker_accuracy", s.ppoCheckerAccuracy());
        if (s.skippedSteps() > 0) o.put("skipped_steps", s.skippedSteps());
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
            Files.writeString(tmp, json.writerWithDefaultPrettyPrinter().writeValueAsString(o) + "\n");
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }
}
