package io.github.rlhf4j.rlhf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.data.Batches;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;

/**
 * A stage's side of "nothing lost": its checkpoints under {@code <checkpoint dir>/<stage>/} (when to write one, how
 * many to keep, which to resume from and what to skip on the way), its metrics file when it resumes, and its plot.
 * What goes into a checkpoint is the stage's business ({@link Saved}).
 *
 * <p>A fresh run (no resume) removes the stage's checkpoints of an earlier run first, so that they are never mixed
 * with its own. On resume the newest checkpoint that is complete and intact is used; damaged ones are skipped with a
 * warning naming them and left in place (the run writes over them when it gets there). A checkpoint taken with
 * other settings stops the run, naming the setting.
 *
 * <p>Data parallel: rank 0 alone tidies, writes the metrics and plots, and rotates. At ZeRO stage 0 it writes the
 * checkpoints alone too (every rank holds the whole state); when an optimizer of the stage is partitioned, every
 * rank writes each checkpoint with it ({@link Checkpoint.Writer}, collective). Every rank resumes from the same
 * checkpoint, or the run stops.
 */
final class StageCheckpoints {
    /** What a stage saves into and restores from a checkpoint: models, optimizers, positions and counters. */
    interface Saved {
        /** Writes the stage's files into {@code w} and its counters into {@code state}. */
        void write(Checkpoint.Writer w, ObjectNode state);

        /** Checks that {@code c} has everything {@link #restore} reads (throws {@link Checkpoint.DamagedException}). */
        void verify(Checkpoint c);

        /** Puts {@code c}'s state into the live models, optimizers and data positions. */
        void restore(Checkpoint c);
    }

    private final String stage, label;
    private final Stages.RunOptions run;
    private final Path dir; // null: this run writes no checkpoints
    private final Map<String, String> settings;
    private final Path metrics;
    private final PrintWriter log;
    private final boolean partitioned;
    private Checkpoint last;
    private volatile boolean plotFailed;

    StageCheckpoints(String stage, String label, Stages.RunOptions run, Map<String, String> settings, Path metrics,
                     PrintWriter log) {
        this(stage, label, run, settings, metrics, log, false);
    }

    /**
     * @param stage the folder and metrics name: step1, step2, step3
     * @param label how log lines name the stage ("step 1")
     * @param settings what a resumed run must share, by flag name
     * @param partitioned whether an optimizer of the stage is partitioned over the ranks (ZeRO stage 1 and up on
     *     several ranks): then every rank writes each checkpoint together ({@link Checkpoint.Writer}), not rank 0
     *     alone
     */
    StageCheckpoints(String stage, String label, Stages.RunOptions run, Map<String, String> settings, Path metrics,
                     PrintWriter log, boolean partitioned) {
        this.stage = stage;
        this.partitioned = partitioned && run.world() > 1;
        this.label = label;
        this.run = run;
        this.settings = settings;
        this.metrics = metrics;
        this.log = log;
        this.dir = run.checkpointDir() == null ? null : run.checkpointDir().resolve(stage);
        if (dir == null || !run.writes()) return; // data parallel: rank 0 alone tidies, writes and rotates
        try {
            Checkpoint.removeLeftovers(dir);
            List<Path> old = Checkpoint.list(dir);
            if (!run.resume() && !old.isEmpty()) {
                log.printf("%s: starting afresh (no --resume): removing %d checkpoint(s) of an earlier run in %s%n",
                        label, old.size(), dir);
                for (Path p : old) Checkpoint.remove(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot tidy " + dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * When resuming a stage that has finished (its newest readable checkpoint holds the result and every
     * {@code outputs} model exists): its figures, after checking the settings. Otherwise null.
     */
    JsonNode finished(Path... outputs) {
        if (dir == null || !run.resume()) return null;
        for (Path p : Checkpoint.list(dir)) {
            Checkpoint c;
            try {
                c = Checkpoint.open(p);
            } catch (Checkpoint.DamagedException e) {
                continue; // resume() names it if it comes to that
            }
            if (c.result() == null) return null;
            for (Path o : outputs) if (!Stages.exists(o)) return null;
            c.requireSettings(settings);
            log.printf("%s: already complete (%s, %s); skipping it%n", label, outputs[0], dir.relativize(p));
            log.flush();
            return c.result();
        }
        return null;
    }

    /**
     * When resuming: restores the newest usable checkpoint through {@code saved}, puts the metrics file back as it
     * was then, and returns it; null when the stage starts from its beginning.
     */
    Checkpoint resume(Saved saved) {
        if (dir == null || !run.resume()) return null;
        Checkpoint[] chosen = new Checkpoint[1];
        run.waitingOnFiles(() -> chosen[0] = resumeHere(saved)); // every rank hashes the checkpoint's files
        return chosen[0];
    }

    private Checkpoint resumeHere(Saved saved) {
        Checkpoint chosen = null;
        for (Path p : Checkpoint.list(dir)) {
            try {
                Checkpoint c = Checkpoint.open(p);
                c.requireSettings(settings);
                if (!c.stage().equals(stage))
                    throw new Checkpoint.DamagedException(p + " is a checkpoint of " + c.stage() + ", not " + stage);
                saved.verify(c);
                c.metricsLines(metrics.getFileName().toString(), c.state().path("metrics_lines").asInt());
                chosen = c;
                break;
            } catch (Checkpoint.DamagedException e) {
                log.printf("warning: %s: skipping checkpoint %s: %s%n", label, p, e.getMessage());
            }
        }
        if (run.world() > 1) {
            // every rank judged the same files; a file one rank sees and another does not would split them
            long[] steps = run.comm().allGather(chosen == null ? -1 : chosen.step());
            for (int r = 0; r < steps.length; r++)
                if (steps[r] != steps[0])
                    throw new IllegalStateException(label + ": rank " + r + " would resume from "
                            + (steps[r] < 0 ? "the beginning" : "checkpoint-" + steps[r]) + " and rank 0 from "
                            + (steps[0] < 0 ? "the beginning" : "checkpoint-" + steps[0]) + " in " + dir + ": every "
                            + "rank must see the same checkpoint files (a shared file system)");
        }
        if (chosen == null) {
            log.printf("%s: no usable checkpoint in %s; starting from the beginning%n", label, dir);
            log.flush();
            return null;
        }
        saved.restore(chosen);
        last = chosen;
        if (!run.writes()) return chosen; // the metrics file is rank 0's
        List<String> lines = chosen.metricsLines(metrics.getFileName().toString(),
                chosen.state().path("metrics_lines").asInt());
        try {
            Path abs = metrics.toAbsolutePath();
            Files.createDirectories(abs.getParent());
            Path tmp = abs.resolveSibling("." + abs.getFileName() + ".tmp-" + ProcessHandle.current().pid());
            Files.write(tmp, lines);
            Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot restore " + metrics + ": " + e.getMessage(), e);
        }
        log.printf("%s: resuming from %s (step %d of %d)%n", label, chosen.dir(), chosen.step(), chosen.totalSteps());
        log.flush();
        last = chosen;
        return chosen;
    }

    /** The stage's metrics log: appended to after a resume, else started afresh. */
    MetricsLog metrics(Checkpoint from) {
        if (!run.writes()) return MetricsLog.discarding();
        return new MetricsLog(metrics, from != null);
    }

    /** Whether step {@code step} of {@code total} ends with a checkpoint: every N steps, and the last. */
    boolean due(long step, long total) {
        return dir != null && (step == total || run.checkpointEvery() > 0 && step % run.checkpointEvery() == 0);
    }

    /**
     * Writes {@code checkpoint-<step>} (the stage's files and {@code state}, plus the metrics so far), removes the
     * oldest beyond the limit, and redraws the plot. Partitioned: every rank calls it at the same step, and writes
     * its optimizer partitions; else rank 0 alone writes.
     */
    void save(long step, long total, Saved saved, ObjectNode state, MetricsLog log) {
        if (partitioned) // the writer's own collectives agree on every part (Checkpoint.Writer)
            run.waitingOnFiles(() -> write(step, total, saved, state, log));
        else // the others wait for rank 0 here, not in the next step's all-reduce under the collectives' limit
            run.together("write checkpoint-" + step + " of " + label, () -> write(step, total, saved, state, log));
    }

    private void write(long step, long total, Saved saved, ObjectNode state, MetricsLog log) {
        if (!partitioned && !run.writes()) return;
        state.put("metrics_lines", log.lines());
        Checkpoint made;
        try (Checkpoint.Writer w = new Checkpoint.Writer(dir, step, run.world(), partitioned ? run.comm() : null)) {
            saved.write(w, state);
            w.metrics(metrics, log.lines());
            made = w.commit(stage, total, settings, state);
        }
        if (!run.writes()) return;
        last = made;
        rotate(step);
        plot();
    }

    /** Records the finished stage's figures in its last checkpoint, and draws the final plot (waiting for it). */
    void complete(ObjectNode result) {
        if (!run.writes()) return;
        if (last != null) last = last.withResult(result);
        plot();
        if (run.plotsDir() != null) Plots.awaitDrawn();
    }

    private void rotate(long step) {
        int keep = run.saveTotalLimit();
        if (keep <= 0) return;
        int kept = 0;
        try {
            for (Path p : Checkpoint.list(dir)) {
                if (Checkpoint.stepOf(p) > step) continue; // a damaged leftover of a killed run, written over later
                if (++kept > keep) Checkpoint.remove(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove old checkpoints in " + dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Redraws the stage's PNG in the background; a machine that cannot draw (no fonts, no AWT) gets one warning, not
     * a failed run.
     */
    void plot() {
        if (!run.writes()) return;
        if (run.plotsDir() == null || plotFailed || !Files.exists(metrics)) return;
        Path png = run.plotsDir().resolve(stage + ".png");
        Plots.drawLater(metrics, png, e -> {
            if (plotFailed) return;
            plotFailed = true;
            log.printf("warning: %s: cannot draw %s: %s%n", label, png, e);
            log.flush();
        });
    }

    // ---- state helpers -------------------------------------------------------------------------------------------

    /** JSON has no NaN: a non-finite value is written as null and read back as NaN. */
    static void putDouble(ObjectNode o, String key, double v) {
        if (Double.isFinite(v)) o.put(key, v);
        else o.putNull(key);
    }

    static double getDouble(JsonNode o, String key) {
        JsonNode v = o.get(key);
        return v == null || !v.isNumber() ? Double.NaN : v.asDouble();
    }

    static void putPosition(ObjectNode o, String key, Batches.Position p) {
        ObjectNode n = o.putObject(key);
        n.put("epoch", p.epoch());
        n.put("offset", p.offset());
    }

    static Batches.Position getPosition(Checkpoint c, String key) {
        JsonNode n = c.state().get(key);
        if (n == null || !n.path("epoch").isInt() || !n.path("offset").isInt())
            throw new Checkpoint.DamagedException(c.dir().resolve(Checkpoint.MANIFEST) + ": no data position '" + key
                    + "'");
        return new Batches.Position(n.get("epoch").asInt(), n.get("offset").asInt());
    }
}
