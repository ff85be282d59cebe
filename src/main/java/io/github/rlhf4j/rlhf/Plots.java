package io.github.rlhf4j.rlhf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Consumer;
import javax.imageio.ImageIO;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.XYStyler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * PNG plots of the training curves: {@code logs/step1.jsonl} (train loss, eval perplexity), {@code step2.jsonl}
 * (loss, accuracy, chosen and rejected mean end scores, each per training batch with the eval figures as points) and
 * {@code step3.jsonl} (actor loss, critic loss, reward, KL, answer length, and the mixture's loss when there is one),
 * one panel per figure, drawn with XChart on a headless AWT canvas. Noisy per-step curves get a smoothed twin
 * (TensorBoard's debiased exponential moving average, weight 0.9). Each PNG is written beside its place and renamed
 * into it, so a reader never sees half an image. Training draws through {@link #drawLater}, on a thread of its own,
 * so that a checkpoint does not wait for AWT to start up (a second or two the first time).
 */
public final class Plots {
    static {
        // no display on a training machine; AWT must not look for one
        if (System.getProperty("java.awt.headless") == null) System.setProperty("java.awt.headless", "true");
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int PANEL_W = 520, PANEL_H = 340, HEADER = 36, MAX_COLUMNS = 3;
    private static final double SMOOTHING = 0.9;
    private static final Color[] COLORS = {new Color(31, 119, 180), new Color(214, 39, 40), new Color(44, 160, 44),
            new Color(148, 103, 189)};

    /**
     * One curve: a metrics key; {@code eval} keys are sparse (eval lines) and drawn as points, in the colour of the
     * training curve they belong to ({@code color}, an index into {@link #COLORS}).
     */
    private record Curve(String key, String label, boolean eval, int color) {}

    private record Panel(String title, String yLabel, List<Curve> curves) {}

    private static Curve train(String key, String label) {
        return new Curve(key, label, false, 0);
    }

    private static Curve train(String key, String label, int color) {
        return new Curve(key, label, false, color);
    }

    private static Curve eval(String key, String label, int color) {
        return new Curve(key, label, true, color);
    }

    private static final Map<String, String> TITLES = Map.of("step1", "step 1: supervised fine-tuning", "step2",
            "step 2: reward model", "step3", "step 3: PPO");

    private static final Map<String, List<Panel>> PANELS = Map.of(
            "step1", List.of(
                    new Panel("training loss", "loss", List.of(train("loss", "train loss"))),
                    new Panel("eval perplexity", "perplexity", List.of(eval("eval_perplexity", "eval perplexity", 0)))),
            "step2", List.of(
                    new Panel("loss", "pairwise loss", List.of(train("loss", "train loss"))),
                    new Panel("accuracy", "chosen > rejected", List.of(train("accuracy", "train batch"),
                            eval("eval_accuracy", "eval", 1))),
                    new Panel("mean end score", "score", List.of(train("chosen_score", "chosen", 0),
                            train("rejected_score", "rejected", 1), eval("eval_chosen_score", "chosen (eval)", 0),
                            eval("eval_rejected_score", "rejected (eval)", 1)))),
            "step3", List.of(
                    new Panel("actor loss", "loss", List.of(train("actor_loss", "actor loss"))),
                    new Panel("critic loss", "loss", List.of(train("critic_loss", "critic loss"))),
                    new Panel("reward", "reward score", List.of(train("reward", "average reward"))),
                    new Panel("KL", "KL to reference", List.of(train("kl", "kl"))),
                    new Panel("answer length", "tokens", List.of(train("answer_length", "answer length"))),
                    new Panel("pretraining mixture", "loss", List.of(train("unsup_loss", "unsup loss")))));

    private static final ExecutorService PLOTTER = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "rlhf4j-plots");
        t.setDaemon(true);
        return t;
    });
    private static final Set<Path> QUEUED = ConcurrentHashMap.newKeySet();

    private Plots() {}

    /**
     * {@link #draw} on the plotting thread; a PNG already queued is not queued twice (it reads the file when it runs,
     * so it draws the newer lines too). Errors go to {@code onError}.
     */
    public static void drawLater(Path jsonl, Path png, Consumer<Throwable> onError) {
        Path key = png.toAbsolutePath().normalize();
        if (!QUEUED.add(key)) return;
        PLOTTER.execute(() -> {
            QUEUED.remove(key); // from here on, a new request queues a new drawing
            try {
                draw(jsonl, png);
            } catch (RuntimeException | LinkageError | java.awt.AWTError e) {
                onError.accept(e);
            }
        });
    }

    /** Waits until every drawing queued so far is written. */
    public static void awaitDrawn() {
        try {
            PLOTTER.submit(() -> {}).get(); // one thread, in order: everything before this has run
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
    }

    /** The stages {@link #draw} knows, by metrics file stem. */
    public static List<String> stages() {
        return List.of("step1", "step2", "step3");
    }

    /**
     * Draws a stage's metrics ({@code stepN.jsonl}; the stage from the file name) to {@code png}. Returns false, writing
     * nothing, when the file has no point to draw yet. Lines that do not parse (the torn last line of a killed run) are
     * skipped.
     */
    public static boolean draw(Path jsonl, Path png) {
        String name = jsonl.getFileName().toString();
        String stage = name.endsWith(".jsonl") ? name.substring(0, name.length() - ".jsonl".length()) : name;
        List<Panel> panels = PANELS.get(stage);
        if (panels == null)
            throw new IllegalArgumentException(jsonl + ": not a stage's metrics file (expected step1.jsonl, step2.jsonl "
                    + "or step3.jsonl)");
        List<JsonNode> lines = read(jsonl);
        List<XYChart> charts = new ArrayList<>();
        for (Panel p : panels) {
            XYChart c = chart(p, lines);
            if (c != null) charts.add(c);
        }
        if (charts.isEmpty()) return false;
        int cols = Math.min(MAX_COLUMNS, charts.size()), rows = (charts.size() + cols - 1) / cols;
        BufferedImage img = new BufferedImage(cols * PANEL_W, HEADER + rows * PANEL_H, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, img.getWidth(), img.getHeight());
            g.setColor(Color.DARK_GRAY);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
            g.drawString(TITLES.get(stage) + "  (" + jsonl.getFileName() + ", " + steps(lines) + " steps)", 12, 24);
            for (int i = 0; i < charts.size(); i++) {
                Graphics2D cell = (Graphics2D) g.create((i % cols) * PANEL_W, HEADER + (i / cols) * PANEL_H, PANEL_W,
                        PANEL_H);
                try {
                    charts.get(i).paint(cell, PANEL_W, PANEL_H);
                } finally {
                    cell.dispose();
                }
            }
        } finally {
            g.dispose();
        }
        writePng(img, png);
        return true;
    }

    /**
     * Redraws every stage whose metrics are in {@code logs} ({@code step1.jsonl} ...) as {@code out/stepN.png};
     * returns the PNGs written.
     */
    public static List<Path> drawAll(Path logs, Path out) {
        List<Path> written = new ArrayList<>();
        for (String s : stages()) {
            Path f = logs.resolve(s + ".jsonl"), png = out.resolve(s + ".png");
            if (Files.isRegularFile(f) && draw(f, png)) written.add(png);
        }
        return written;
    }

    private static XYChart chart(Panel p, List<JsonNode> lines) {
        XYChart chart = new XYChartBuilder().width(PANEL_W).height(PANEL_H).title(p.title()).xAxisTitle("step")
                .yAxisTitle(p.yLabel()).build();
        XYStyler st = chart.getStyler();
        st.setLegendPosition(Styler.LegendPosition.OutsideS);
        st.setLegendLayout(Styler.LegendLayout.Horizontal);
        st.setChartBackgroundColor(Color.WHITE);
        st.setPlotGridLinesColor(new Color(225, 225, 225));
        st.setLegendBackgroundColor(new Color(255, 255, 255, 200));
        st.setDecimalPattern("#0.###");
        int series = 0;
        for (Curve c : p.curves()) {
            List<Double> xs = new ArrayList<>(), ys = new ArrayList<>();
            for (JsonNode line : lines) {
                JsonNode v = line.get(c.key()), x = line.get("step");
                if (v == null || !v.isNumber() || x == null || !x.isNumber()) continue;
                xs.add(x.asDouble());
                ys.add(v.asDouble());
            }
            Color col = COLORS[c.color() % COLORS.length];
            if (xs.isEmpty()) continue;
            series += c.eval() || xs.size() <= 20 ? 1 : 2;
            if (c.eval()) {
                XYSeries s = chart.addSeries(c.label(), xs, ys);
                s.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Scatter);
                s.setMarker(SeriesMarkers.DIAMOND);
                s.setMarkerColor(col);
            } else if (xs.size() > 20) {
                XYSeries raw = chart.addSeries(c.label(), xs, ys);
                raw.setMarker(SeriesMarkers.NONE);
                raw.setLineColor(new Color(col.getRed(), col.getGreen(), col.getBlue(), 70));
                raw.setLineStyle(new BasicStroke(1f));
                XYSeries smooth = chart.addSeries(c.label() + " (smoothed)", xs, smooth(ys));
                smooth.setMarker(SeriesMarkers.NONE);
                smooth.setLineColor(col);
                smooth.setLineStyle(new BasicStroke(2f));
            } else {
                XYSeries s = chart.addSeries(c.label(), xs, ys);
                s.setMarker(SeriesMarkers.CIRCLE);
                s.setMarkerColor(col);
                s.setLineColor(col);
            }
        }
        st.setLegendVisible(series > 1); // one curve: the panel's title says what it is
        return series == 0 ? null : chart;
    }

    /** TensorBoard's smoothing: an EMA with weight {@link #SMOOTHING}, debiased for the first points. */
    private static List<Double> smooth(List<Double> ys) {
        List<Double> out = new ArrayList<>(ys.size());
        double last = 0, weight = 0;
        for (double y : ys) {
            last = SMOOTHING * last + (1 - SMOOTHING) * y;
            weight = SMOOTHING * weight + (1 - SMOOTHING);
            out.add(last / weight);
        }
        return out;
    }

    private static long steps(List<JsonNode> lines) {
        long n = 0;
        for (JsonNode l : lines) if (l.path("step").isNumber()) n = Math.max(n, l.get("step").asLong());
        return n;
    }

    private static List<JsonNode> read(Path jsonl) {
        List<JsonNode> out = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(jsonl)) {
                if (line.isBlank()) continue;
                try {
                    JsonNode n = JSON.readTree(line);
                    if (n != null && n.isObject()) out.add(n);
                } catch (IOException torn) {
                    // the last line of a killed run may be cut short
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + jsonl + ": " + e.getMessage(), e);
        }
        return out;
    }

    /** Writes {@code img} as a PNG atomically (a temporary file, then a rename): a reader never sees half a plot. */
    public static void writePng(BufferedImage img, Path png) {
        Path abs = png.toAbsolutePath();
        Path tmp = abs.resolveSibling("." + abs.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        try {
            Files.createDirectories(abs.getParent());
            if (!ImageIO.write(img, "png", tmp.toFile())) throw new IOException("no PNG writer in this JRE");
            Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // the original error matters more
            }
            throw new UncheckedIOException("cannot write " + png + ": " + e.getMessage(), e);
        }
    }
}
