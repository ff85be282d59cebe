package io.github.rlhf4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.serve.TestModels;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code train --deployment-type single_node --num-gpus 2} on the CPU, as a user runs it: the command starts two
 * ranks under a real {@code mpirun} (Launch), each finds its place in the environment, takes its half of every
 * global batch and all-reduces its gradients (ZeRO stage 0) through all three steps; rank 0 alone writes the logs and
 * models. Against one process with the same global batch (2 ranks x 2 = 4), dropout off and rows of one length (so
 * the mean of the ranks' mean losses is the one process's mean): the two runs' step-1 weight changes point the same
 * way (cosine > 0.99; measured 0.9993) and are of the same size. Not bit for bit: the gradient sums round in another
 * order, and AdamW's sign-like first steps turn a flipped sign of a near-zero gradient into a full lr step.
 */
class DataParallelTrainTest {
    @TempDir
    Path tmp;

    static boolean hasMpirun() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator))
            if (Files.isExecutable(Path.of(dir, "mpirun"))) return true;
        System.out.println("DataParallelTrainTest skipped: no mpirun on the PATH (install openmpi-bin)");
        return false;
    }

    List<String> train(Path init, Path hh, Path out, int batch, int steps) {
        return new ArrayList<>(List.of("train", "--actor-model", init.toString(), "--reward-model", init.toString(),
                "--data-path", hh.toString(), "--data-split", "1,1,1", "--max-seq-len", "48",
                "--max-prompt-seq-len", "48", "--max-answer-seq-len", "4", "--per-device-train-batch-size",
                Integer.toString(batch), "--num-train-epochs", "20", "--max-steps", Integer.toString(steps), "--sft-learning-rate", "1e-2",
                "--reward-learning-rate", "1e-2", "--actor-learning-rate", "1e-3", "--critic-learning-rate", "1e-3",
                "--num-warmup-steps", "0", "--device", "cpu", "--output-dir", out.toString()));
    }

    Path init, hh;

    /** A tiny GPT-2 with dropout off, and 60 hh-rlhf style pairs of one length. */
    void fixtures() throws Exception {
        Path[] made = tinyModelAndPairs(tmp);
        init = made[0];
        hh = made[1];
    }

    /**
     * Into {@code dir}: a tiny OPT-style model with dropout off ({@code init}) and 60 hh-rlhf style pairs whose rows
     * all have one length ({@code pairs.jsonl}); returns both paths. Dropout off: with it, a rank draws the masks of
     * its own rows where one process draws those of all rows. One length: then each rank's mean loss over its own
     * tokens averages to the one process's mean over all of them, and the runs differ only by rounding.
     */
    static Path[] tinyModelAndPairs(Path dir) throws Exception {
        Path init = dir.resolve("init");
        Path config = dir.resolve("config.json");
        Files.writeString(config, TestModels.config("opt_style", 64).replace("\"initializer_range\"",
                "\"embd_pdrop\": 0.0, \"resid_pdrop\": 0.0, \"attn_pdrop\": 0.0, \"initializer_range\""));
        Cli made = Cli.run("init-model", "--config", config.toString(), "--out", init.toString(), "--seed", "5",
                "--tokenizer", TestModels.tokenizerFixture("opt_style").toString());
        assertEquals(0, made.exit(), made.toString());
        // enough rows that every rank gets rows of its own
        Path hh = dir.resolve("pairs.jsonl");
        StringBuilder rows = new StringBuilder();
        String[] words = {"river", "stone", "lamp", "garden", "window", "cloud", "bread", "violin", "harbor", "maple"};
        for (int i = 0; i < 60; i++) {
            StringBuilder q = new StringBuilder(), a = new StringBuilder(), r = new StringBuilder();
            for (int k = 0; k < 3; k++) q.append(words[(i + k) % 10]).append(' ');
            for (int k = 0; k < 3; k++) a.append(words[(i * 7 + k) % 10]).append(' ');
            for (int k = 0; k < 2; k++) r.append(words[(i * 3 + k) % 10]).append(' ');
            String prompt = "\n\nHuman: tell me about " + q.toString().trim() + "?\n\nAssistant:";
            rows.append(new com.fasterxml.jackson.databind.ObjectMapper().createObjectNode()
                    .put("chosen", prompt + " " + a.toString().trim() + ".")
                    .put("rejected", prompt + " " + r.toString().trim() + " no.")).append('\n');
        }
        Files.writeString(hh, rows);
        return new Path[] {init, hh};
    }

    /** {@code train ... --deployment-type single_node --num-gpus 2} in a child JVM, its output in {@code log}. */
    Process startDataParallel(Path out, Path log, int steps, String... extra) throws Exception {
        List<String> args = new ArrayList<>(train(init, hh, out, 2, steps));
        args.addAll(List.of(extra));
        return Cli.singleNode(args, 2, log, tmp).start();
    }

    String runDataParallel(Path out, String name, int steps, String... extra) throws Exception {
        Path log = tmp.resolve(name + ".log");
        Process p = startDataParallel(out, log, steps, extra);
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), name + ": the data-parallel run did not finish");
        String text = Files.readString(log);
        assertEquals(0, p.exitValue(), name + ":\n" + text);
        return text;
    }

    @Test
    void singleNodeStartsRanksThatTrainTheThreeStepsDataParallel() throws Exception {
        assumeTrue(hasMpirun(), "no mpirun on the PATH");
        fixtures();
        Path dp = tmp.resolve("dp"), one = tmp.resolve("one");

        String log = runDataParallel(dp, "dp", 3);

        Cli single = Cli.run(train(init, hh, one, 4, 3).toArray(String[]::new));
        assertEquals(0, single.exit(), single.toString());

        // rank 0 alone logged: one line per step (and the eval line), not one per rank
        assertEquals(4, Files.readAllLines(dp.resolve("logs/step1.jsonl")).size(), log);
        assertEquals(3, Files.readAllLines(dp.resolve("logs/step3.jsonl")).size(), log);
        assertEquals(1, log.split("step 1 \\(sft\\)", -1).length - 1, "one rank speaks:\n" + log);
        for (int step = 1; step <= 3; step++)
            assertTrue(log.contains("step " + step + ": data parallel over 2 ranks (ZeRO stage 0): each takes 2 rows of "
                    + "a global batch of 4"), log);
        // the logged figures are means over ranks. At the first step of step 2 (the same weights in both runs, two
        // pairs a rank) the mean of the ranks' accuracies and end scores is the one process's figure over its four
        // pairs, up to rounding
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        var ranks = json.readTree(Files.readAllLines(dp.resolve("logs/step2.jsonl")).get(0));
        var alone = json.readTree(Files.readAllLines(one.resolve("logs/step2.jsonl")).get(0));
        System.out.printf("DataParallelTrainTest: step 2's first step, 2 ranks %s%n  1 process %s%n", ranks, alone);
        assertEquals(alone.get("accuracy").asDouble(), ranks.get("accuracy").asDouble(), 1e-9, "accuracy");
        for (String k : List.of("chosen_score", "rejected_score"))
            assertEquals(alone.get(k).asDouble(), ranks.get(k).asDouble(),
                    1e-5 * (1 + Math.abs(alone.get(k).asDouble())), k);
        for (String m : List.of("actor-models/init", "reward-models/init", "step3-models/init/actor",
                "step3-models/init/critic"))
            assertTrue(Files.isRegularFile(dp.resolve(m).resolve("model.safetensors")), m);

        try (HfModel a = HfModel.load(dp.resolve("actor-models/init"), Device.cpu(), DType.F32, false);
             HfModel b = HfModel.load(one.resolve("actor-models/init"), Device.cpu(), DType.F32, false);
             HfModel i = HfModel.load(init, Device.cpu(), DType.F32, false)) {
            float[] x = a.parameters().data().toFloatArray(), y = b.parameters().data().toFloatArray();
            float[] w = i.parameters().data().toFloatArray();
            double dot = 0, nx = 0, ny = 0;
            for (int k = 0; k < w.length; k++) {
                double dx = x[k] - w[k], dy = y[k] - w[k];
                dot += dx * dy;
                nx += dx * dx;
                ny += dy * dy;
            }
            double cos = dot / Math.sqrt(nx * ny), ratio = Math.sqrt(nx / ny), max = 0;
            for (int k = 0; k < w.length; k++) max = Math.max(max, Math.abs(x[k] - y[k]));
            System.out.printf("DataParallelTrainTest: max |w_2 ranks - w_1 process| %.2e (training moved them by up to "
                    + "3e-2)%n", max);
            System.out.printf("DataParallelTrainTest: step-1 weight change, 2 ranks vs 1 process: cosine %.4f, "
                    + "size ratio %.4f%n", cos, ratio);
            // AdamW's first steps move a weight by about lr x sign(g): the few gradients within rounding of zero
            // may take the other sign in the other run (max difference ~2 lr); everything else agrees
            assertTrue(cos > 0.99, "the two runs moved the weights differently: cosine " + cos);
            assertTrue(ratio > 0.8 && ratio < 1.25, "size ratio " + ratio);
        }
    }

    /**
     * kill -9 of one rank in the middle of step 1: mpirun ends the whole job (the other rank does not hang), and
     * the same command with {@code --resume} continues from the last complete checkpoint and ends with the same model
     * bytes as a data-parallel run that was never interrupted. At ZeRO stage 0 rank 0 writes the checkpoints alone;
     * at stage 3 every rank writes its optimizer partition into them, and gathers the parameters for rank 0's save.
     */
    @ParameterizedTest(name = "ZeRO stage {0}")
    @ValueSource(ints = {0, 3})
    void aKilledRankEndsTheJobAndResumeReachesTheUninterruptedRunsBytes(int stage) throws Exception {
        assumeTrue(hasMpirun(), "no mpirun on the PATH");
        fixtures();
        Path whole = tmp.resolve("whole"), cut = tmp.resolve("cut");
        String[] longer = {"--checkpoint-every", "2", "--save-total-limit", "0", "--zero-stage",
                Integer.toString(stage)};
        runDataParallel(whole, "whole", 8, longer);

        Path log = tmp.resolve("killed.log");
        Process top = startDataParallel(cut, log, 8, longer);
        Path second = cut.resolve("checkpoints/step1/checkpoint-4/manifest.json");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(240);
        while (!Files.exists(second) && top.isAlive() && System.nanoTime() < deadline) Thread.sleep(20);
        assertTrue(Files.exists(second), "no checkpoint-4 in step 1:\n" + Files.readString(log));
        // a rank: a JVM whose parent is mpirun (Open MPI's orterun), not the launching JVM above it
        ProcessHandle rank = top.toHandle().descendants()
                .filter(h -> h.info().command().orElse("").endsWith("java"))
                .filter(h -> h.parent().flatMap(q -> q.info().command()).map(c -> c.endsWith("orterun")
                        || c.endsWith("mpirun") || c.endsWith("mpiexec")).orElse(false))
                .reduce((a, b) -> b).orElseThrow(() -> new AssertionError("no rank process below mpirun"));
        long killedAt = System.nanoTime();
        assertTrue(rank.destroyForcibly(), "kill -9 of rank pid " + rank.pid());
        assertTrue(top.waitFor(60, TimeUnit.SECONDS), "the job did not end within 60 s of a rank's kill -9");
        double seconds = (System.nanoTime() - killedAt) / 1e9;
        String killed = Files.readString(log);
        System.out.printf("DataParallelTrainTest: kill -9 of rank pid %d ended the job in %.1f s (exit %d)%n",
                rank.pid(), seconds, top.exitValue());
        assertTrue(top.exitValue() != 0, "a job that lost a rank must fail:\n" + killed);
        // mpirun names the lost rank: "mpirun noticed that process rank 1 with PID ... exited on signal 9 (Killed)"
        assertTrue(killed.matches("(?s).*process rank [01] with PID \\d+ .*exited on signal 9.*"), killed);
        assertTrue(!Files.exists(cut.resolve("step3-models/init/actor/model.safetensors")), "step 3 never ran");

        if (stage > 0)
            assertTrue(Files.isRegularFile(cut.resolve("checkpoints/step1/checkpoint-4/optimizer/actor.rank-1-of-2"
                    + ".safetensors")), "rank 1's partition is in the checkpoint");
        List<String> again = new ArrayList<>(List.of(longer));
        again.add("--resume");
        String resumed = runDataParallel(cut, "resumed", 8, again.toArray(String[]::new));
        assertTrue(resumed.contains("step 1: resuming from"), resumed);
        assertTrue(resumed.contains("(ZeRO stage " + stage + ")"), resumed);
        for (String m : List.of("actor-models/init", "reward-models/init", "step3-models/init/actor",
                "step3-models/init/critic"))
            assertEquals(-1, Files.mismatch(whole.resolve(m).resolve("model.safetensors"),
                    cut.resolve(m).resolve("model.safetensors")), m + " differs from the uninterrupted run");
    }

    /**
     * Rank 0 cannot write step 1's model (a file stands where its parent folder goes): every rank stops with the error,
     * rank 1 naming rank 0, at once, instead of waiting for rank 0 in a collective until the watchdog's limit.
     */
    @Test
    void aSaveThatFailsOnRankZeroStopsEveryRank() throws Exception {
        assumeTrue(hasMpirun(), "no mpirun on the PATH");
        fixtures();
        Path out = tmp.resolve("blocked");
        Files.createDirectories(out);
        Files.writeString(out.resolve("actor-models"), "not a folder");
        Path log = tmp.resolve("blocked.log");
        long t0 = System.nanoTime();
        Process p = startDataParallel(out, log, 2, "--step", "1");
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the job did not stop:\n" + Files.readString(log));
        double seconds = (System.nanoTime() - t0) / 1e9;
        String text = Files.readString(log);
        System.out.printf("DataParallelTrainTest: a failed save on rank 0 stopped the job in %.1f s (exit %d)%n",
                seconds, p.exitValue());
        assertTrue(p.exitValue() != 0, text);
        assertTrue(text.contains("rank 0 could not save"), text);
        assertTrue(!text.contains("has not completed after"), "stopped by the watchdog, not by the agreement:\n" + text);
    }
}
