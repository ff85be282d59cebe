package io.github.rlhf4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.serve.TestModels;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The PNG plots: a tiny step 1 draws {@code output/plots/step1.png} by itself; {@code bin/rlhf4j plot} redraws every
 * stage's from its metrics. Each must decode as a PNG of one panel per figure, and hold the curves: pixels of the
 * series colour, far more than a blank canvas with axes would.
 */
class PlotsTest {
    /** XChart-independent facts of the layout: 520 x 340 panels, three a row, under a 36-pixel title strip. */
    private static final int PANEL_W = 520, PANEL_H = 340, HEADER = 36;
    private static final int CURVE_RGB = 0x1F77B4; // the first series' colour

    @TempDir
    Path tmp;

    @Test
    void aStageDrawsItsCurvesAndThePlotCommandRedrawsEveryStage() throws Exception {
        Path config = tmp.resolve("config.json"), init = tmp.resolve("tiny"), out = tmp.resolve("output");
        Files.writeString(config, TestModels.config("opt_style", 128));
        Cli made = Cli.run("init-model", "--config", config.toString(), "--out", init.toString(), "--seed", "3",
                "--tokenizer", TestModels.tokenizerFixture("opt_style").toString());
        assertEquals(0, made.exit(), made.toString());
        Path hh = Path.of(getClass().getResource("/fixtures/data/hh-rlhf.jsonl").toURI());
        Path rmStatic = Path.of(getClass().getResource("/fixtures/data/rm-static.jsonl").toURI());
        Cli sft = Cli.run("sft", "--data-path", hh.toString(), rmStatic.toString(), "--data-split", "1,0,0",
                "--model-name-or-path",
                init.toString(), "--max-seq-len", "64", "--per-device-train-batch-size", "2", "--learning-rate", "1e-2",
                "--num-train-epochs", "20", "--max-steps", "12", "--output-dir", out.toString());
        assertEquals(0, sft.exit(), sft.toString());
        assertTrue(sft.out().matches("(?s).*step 1 eval: perplexity \\d.*"), sft.out());

        BufferedImage step1 = ImageIO.read(out.resolve("plots/step1.png").toFile());
        assertEquals(2 * PANEL_W, step1.getWidth(), "two panels: train loss, eval perplexity");
        assertEquals(HEADER + PANEL_H, step1.getHeight());
        assertDrawn(step1, "step1.png");

        // the plot command: step 1's real metrics, steps 2 and 3 from a few lines with their keys
        Path logs = out.resolve("logs");
        List<String> s2 = new ArrayList<>(), s3 = new ArrayList<>();
        for (int i = 1; i <= 40; i++) {
            s2.add(String.format(Locale.ROOT, "{\"step\":%d,\"loss\":%.4f,\"accuracy\":%.3f,\"chosen_score\":%.3f,"
                    + "\"rejected_score\":%.3f,\"lr\":1e-3}", i, 0.7 / Math.sqrt(i), 0.5 + i / 100.0, i / 20.0, -i / 30.0));
            s3.add(String.format(Locale.ROOT, "{\"step\":%d,\"actor_loss\":%.4f,\"critic_loss\":%.4f,\"reward\":%.3f,"
                    + "\"kl\":%.4f,\"answer_length\":%.1f,\"unsup_loss\":null}", i, Math.sin(i) / 5, 1.0 / i, i / 40.0,
                    i / 1000.0, 5.0 + i % 3));
        }
        s2.add("{\"step\":40,\"eval_accuracy\":0.8,\"eval_chosen_score\":1.5,\"eval_rejected_score\":-1.0,\"eval_pairs\":9}");
        s3.add("{\"step\":41,\"actor_lo"); // the torn last line of a killed run
        Files.write(logs.resolve("step2.jsonl"), s2);
        Files.write(logs.resolve("step3.jsonl"), s3);
        Path plots = tmp.resolve("replotted");
        Cli plot = Cli.run("plot", "--logs", logs.toString(), "--out", plots.toString());
        assertEquals(0, plot.exit(), plot.toString());
        for (String s : List.of("step1", "step2", "step3"))
            assertTrue(plot.out().contains("wrote " + plots.resolve(s + ".png")), plot.out());

        BufferedImage step2 = ImageIO.read(plots.resolve("step2.png").toFile());
        assertEquals(3 * PANEL_W, step2.getWidth(), "loss, accuracy, scores");
        assertEquals(HEADER + PANEL_H, step2.getHeight());
        assertDrawn(step2, "step2.png");
        BufferedImage step3 = ImageIO.read(plots.resolve("step3.png").toFile());
        assertEquals(3 * PANEL_W, step3.getWidth());
        assertEquals(HEADER + 2 * PANEL_H, step3.getHeight(), "five panels (no mixture loss) on two rows");
        assertDrawn(step3, "step3.png");
        assertNotEquals(-1, Files.mismatch(plots.resolve("step1.png"), plots.resolve("step2.png")));

        Cli none = Cli.run("plot", "--logs", tmp.resolve("tiny").toString(), "--out", plots.toString());
        assertNotEquals(0, none.exit());
        assertTrue(none.err().contains("no step1.jsonl, step2.jsonl or step3.jsonl"), none.toString());
    }

    /** At least 1% of the pixels are not white, and the first series' colour is drawn in every panel row. */
    private static void assertDrawn(BufferedImage img, String name) throws IOException {
        long ink = 0;
        int rows = (img.getHeight() - HEADER) / PANEL_H;
        int[] curveInRow = new int[rows];
        for (int y = 0; y < img.getHeight(); y++)
            for (int x = 0; x < img.getWidth(); x++) {
                int rgb = img.getRGB(x, y) & 0xFFFFFF;
                if (rgb != 0xFFFFFF) ink++;
                if (rgb == CURVE_RGB && y >= HEADER) curveInRow[(y - HEADER) / PANEL_H]++;
            }
        assertTrue(ink > img.getWidth() * (long) img.getHeight() / 100, name + ": only " + ink + " drawn pixels");
        for (int r = 0; r < rows; r++)
            assertTrue(curveInRow[r] > 50, name + ": panel row " + r + " has " + curveInRow[r] + " curve pixels");
    }
}
