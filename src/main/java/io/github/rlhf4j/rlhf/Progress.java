package io.github.rlhf4j.rlhf;

import java.io.PrintWriter;
import java.util.Locale;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * The progress of a training loop: a progress bar (stage, step, the loop's figures, speed, ETA) on a terminal, and
 * plain log lines about every twentieth of the loop otherwise (a log file, CI, a pipe), so logs stay readable.
 */
public final class Progress implements AutoCloseable {
    private final String task;
    private final long total;
    private final PrintWriter log;
    private final ProgressBar bar;
    private final long every;
    private final long from;
    private final long start = System.nanoTime();

    private Progress(String task, long total, long from, PrintWriter log, boolean terminal) {
        this.task = task;
        this.total = total;
        this.from = from;
        this.log = log;
        this.every = Math.max(1, total / 20);
        this.bar = terminal ? new ProgressBarBuilder().setTaskName(task).setInitialMax(total)
                .startsFrom(from, java.time.Duration.ZERO)
                .setStyle(ProgressBarStyle.COLORFUL_UNICODE_BLOCK).setUpdateIntervalMillis(250).build() : null;
    }

    /**
     * A bar when stdout is a terminal, else log lines to {@code log}. (On JDK 22 and later {@code System.console()} is
     * not null when output is redirected, so {@link java.io.Console#isTerminal()} decides.)
     */
    public static Progress start(String task, long total, PrintWriter log) {
        return start(task, total, 0, log);
    }

    /** As {@link #start(String, long, PrintWriter)} for a loop resumed with {@code done} steps behind it. */
    public static Progress start(String task, long total, long done, PrintWriter log) {
        java.io.Console c = System.console();
        return new Progress(task, total, done, log, c != null && c.isTerminal());
    }

    /** For tests and embedding: always plain log lines. */
    public static Progress plain(String task, long total, PrintWriter log) {
        return new Progress(task, total, 0, log, false);
    }

    /** Step {@code done} of the total finished; {@code figures} is shown beside it ("loss 1.234 lr 2e-3"). */
    public void step(long done, String figures) {
        if (bar != null) {
            bar.stepTo(done);
            bar.setExtraMessage(" " + figures);
            return;
        }
        if (done % every != 0 && done != total) return;
        double s = (System.nanoTime() - start) / 1e9;
        double eta = done > from ? s / (done - from) * (total - done) : Double.NaN;
        log.printf(Locale.ROOT, "%s %d/%d (%.0f%%) %s | %.1f s, ETA %.0f s%n", task, done, total, 100.0 * done / total,
                figures, s, eta);
        log.flush();
    }

    /** Seconds since this loop (or its resumed part) started. */
    public double elapsed() {
        return (System.nanoTime() - start) / 1e9;
    }

    @Override
    public void close() {
        if (bar != null) bar.close();
    }
}
