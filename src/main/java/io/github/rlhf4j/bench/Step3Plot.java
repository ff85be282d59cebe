package io.github.rlhf4j.bench;

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
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * The step-3 sweep as a PNG: seconds per iteration against answer length (one line per implementation and batch) and
 * against batch (one per implementation and answer length), from the JSON lines {@code bench step3 --json} and the
 * PyTorch peer write ({@code impl}, {@code batch}, {@code answer_len}, {@code iter_s}, {@code iter_times_s}). Drawn with XChart on a headless
 * canvas and written atomically.
 */
public final class Step3Plot {
    static {
        if (System.getProperty("java.awt.headless") == null) System.setProperty("java.awt.headless", "true");
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int PANEL_W = 660, PANEL_H = 440, HEADER = 36;
    private static final Color OURS = new Color(31, 119, 180), PEER = new Color(214, 39, 40);
    private static final float[][] DASHES = {null, {8f, 5f}, {2f, 4f}, {10f, 4f, 2f, 4f}};

    /** One measured point. */
    public record Point(String impl, int batch, int answerLen, double iterSeconds) {}

    private Step3Plot() {}

    /** Which iteration time stands for a run: the median (the table's) or the fastest timed iteration. */
    public enum Stat { MEDIAN, MIN }

    /** The points of a JSON Lines file by their median iteration; lines without the four fields are skipped. */
    public static List<Point> read(Path jsonl) {
        return read(jsonl, Stat.MEDIAN);
    }

    /**
     * The points of a JSON Lines file; {@link Stat#MIN} takes the fastest of {@code iter_times_s} (the least disturbed
     * iteration on a shared machine), the median {@code iter_s} where a line has no list.
     */
    public static List<Point> read(Path jsonl, Stat stat) {
        List<Point> out = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(jsonl)) {
                if (line.isBlank()) continue;
                JsonNode n;
                try {
                    n = JSON.readTree(line);
                } catch (IOException bad) {
                    continue;
                }
                if (n == null || !n.path("impl").isTextual() || !n.path("batch").isInt()
                        || !n.path("answer_len").isInt() || !n.path("iter_s").isNumber()) continue;
                double secs = n.get("iter_s").asDouble();
                if (stat == Stat.MIN && n.path("iter_times_s").isArray() && !n.get("iter_times_s").isEmpty()) {
                    secs = Double.POSITIVE_INFINITY;
                    for (JsonNode t : n.get("iter_times_s")) secs = Math.min(secs, t.asDouble());
                }
                out.add(new Point(n.get("impl").asText(), n.get("batch").asInt(), n.get("answer_len").asInt(), secs));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + jsonl + ": " + e.getMessage(), e);
        }
        return out;
    }

    /** Draws {@code points} to {@code png} under {@code title}. */
    public static void draw(List<Point> points, String title, Path png) {
        if (points.isEmpty()) throw new IllegalArgumentException("no step-3 points to plot");
        XYChart byAnswer = chart("seconds per iteration vs answer length", "answer length (tokens)");
        XYChart byBatch = chart("seconds per iteration vs batch", "batch (sequences)");
        TreeSet<String> impls = new TreeSet<>(java.util.Comparator.comparing((String s) -> !s.equals("rlhf4j"))
                .thenComparing(s -> s));
        for (Point p : points) impls.add(p.impl());
        for (String impl : impls) {
            Color col = impl.equals("rlhf4j") ? OURS : PEER;
            // answer length on x, one line per batch; then batch on x, one line per answer length
            addSeries(byAnswer, impl, col, "batch", points, true);
            addSeries(byBatch, impl, col, "answer", points, false);
        }
        BufferedImage img = new BufferedImage(2 * PANEL_W, HEADER + PANEL_H, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, img.getWidth(), img.getHeight());
            g.setColor(Color.DARK_GRAY);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
            g.drawString(title, 12, 24);
            XYChart[] charts = {byAnswer, byBatch};
            for (int i = 0; i < charts.length; i++) {
                Graphics2D cell = (Graphics2D) g.create(i * PANEL_W, HEADER, PANEL_W, PANEL_H);
                try {
                    charts[i].paint(cell, PANEL_W, PANEL_H);
                } finally {
                    cell.dispose();
                }
            }
        } finally {
            g.dispose();
        }
        io.github.rlhf4j.rlhf.Plots.writePng(img, png);
    }

    private static XYChart chart(String title, String xLabel) {
        XYChart c = new XYChartBuilder().width(PANEL_W).height(PANEL_H).title(title).xAxisTitle(xLabel)
                .yAxisTitle("s / iteration").build();
        c.getStyler().setLegendPosition(Styler.LegendPosition.OutsideE);
        c.getStyler().setChartBackgroundColor(Color.WHITE);
        c.getStyler().setPlotGridLinesColor(new Color(225, 225, 225));
        c.getStyler().setLegendBackgroundColor(new Color(255, 255, 255, 200));
        c.getStyler().setDecimalPattern("#0.###");
        return c;
    }

    private static void addSeries(XYChart chart, String impl, Color col, String groupName, List<Point> points,
                                  boolean xIsAnswer) {
        // group by the other variable; x sorted within each line
        Map<Integer, TreeMap<Integer, Double>> groups = new TreeMap<>();
        for (Point p : points) {
            if (!p.impl().equals(impl)) continue;
            int group = xIsAnswer ? p.batch() : p.answerLen(), x = xIsAnswer ? p.answerLen() : p.batch();
            groups.computeIfAbsent(group, k -> new TreeMap<>()).merge(x, p.iterSeconds(), Math::min);
        }
        int i = 0;
        for (var e : groups.entrySet()) {
            List<Double> xs = new ArrayList<>(), ys = new ArrayList<>();
            for (var pt : e.getValue().entrySet()) {
                xs.add((double) pt.getKey());
                ys.add(pt.getValue());
            }
            XYSeries s = chart.addSeries(impl + ", " + groupName + " " + e.getKey(), xs, ys);
            s.setLineColor(col);
            s.setMarkerColor(col);
            s.setMarker(SeriesMarkers.CIRCLE);
            float[] dash = DASHES[i++ % DASHES.length];
            s.setLineStyle(dash == null ? new BasicStroke(2f)
                    : new BasicStroke(2f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, dash, 0f));
        }
    }

}
