package io.github.rlhf4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code rlhf4j bench step3} on the tiny preset runs to the end and prints every field of DeepSpeed-Chat's table, with
 * the printed figures agreeing with the JSON it writes and with each other; {@code bench step3-plot} draws the sweep.
 */
class BenchCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern ROW = Pattern.compile("(?m)^(generation|experience forwards|actor training|"
            + "critic training|other|iteration \\(median\\)) +([0-9.e+-]+) +([0-9.]+)%");

    @TempDir
    Path tmp;

    @Test
    void step3OnTheTinyPresetPrintsTheWholeTable() throws Exception {
        Path json = tmp.resolve("out/step3.json");
        Cli r = Cli.run("bench", "step3", "--actor", "tiny", "--critic", "tiny", "--batch", "2", "--prompt-len", "8",
                "--answer-len", "8", "--iters", "1", "--warmup", "0", "--threads", "2", "--json", json.toString());
        assertEquals(0, r.exit(), r.toString());
        String out = r.out();
        for (String field : List.of("actor  tiny", "critic tiny", "batch 2, prompt 8 + answer 8 tokens (EOS ignored)",
                "device cpu:0", "sequences/s", "tokens/s", "hours/epoch", "= ceil(264292 / 2) x", "achieved",
                "floor              H100 80GB", "floor              this CPU, f32 (232 GFLOP/s, compute only)",
                "this run reaches", "DeepSpeed-Chat     published no figure"))
            assertTrue(out.contains(field), "missing '" + field + "' in\n" + out);

        // the six rows: the four phases and 'other' add up to the printed iteration time
        Matcher m = ROW.matcher(out);
        List<Double> secs = new ArrayList<>();
        while (m.find()) secs.add(Double.parseDouble(m.group(2)));
        assertEquals(6, secs.size(), out);
        double sum = secs.get(0) + secs.get(1) + secs.get(2) + secs.get(3) + secs.get(4);
        assertEquals(secs.get(5), sum, 1e-3 * secs.get(5) + 1e-4, "rows printed to 4 digits\n" + out);

        JsonNode j = JSON.readTree(Files.readString(json));
        double iter = j.get("iter_s").asDouble();
        JsonNode ph = j.get("phases_s");
        for (String k : List.of("generation", "experience", "actor_training", "critic_training"))
            assertTrue(ph.get(k).asDouble() > 0, k + " took no time: " + j);
        // 'other' is what no phase was charged: never negative, so no phase was counted twice
        assertTrue(ph.get("other").asDouble() >= 0, j.toString());
        assertEquals(iter, ph.get("generation").asDouble() + ph.get("experience").asDouble()
                + ph.get("actor_training").asDouble() + ph.get("critic_training").asDouble()
                + ph.get("other").asDouble(), 1e-9);
        assertEquals(secs.get(5), iter, 1e-3 * iter, "printed and JSON iteration");
        assertEquals(2 / iter, j.get("sequences_per_s").asDouble(), 1e-9);
        assertEquals(2 * 16 / iter, j.get("tokens_per_s").asDouble(), 1e-9);
        assertEquals((132146 * iter + j.get("init_s").asDouble()) / 3600, j.get("hours_per_epoch").asDouble(), 1e-9);
        assertEquals(198528, j.get("actor_params").asLong());
        assertTrue(j.get("floor_cpu").get("fraction").asDouble() > 0, j.toString());
        assertTrue(out.contains(String.format(Locale.ROOT, "sequences/s        %.4g", 2 / iter).substring(0, 22)), out);
    }

    @Test
    void theCpuTinyPresetSetsItsShapes() {
        Cli r = Cli.run("bench", "step3", "--run", "cpu-tiny", "--iters", "1", "--warmup", "0", "--threads", "2");
        assertEquals(0, r.exit(), r.toString());
        assertTrue(r.out().contains("batch 4, prompt 64 + answer 64 tokens"), r.out());
        assertTrue(r.out().contains("0 warm-up + 1 timed iterations"), r.out());
    }

    @Test
    void runPresetsRefuseConflictingFlagsAndLora() {
        Cli both = Cli.run("bench", "step3", "--run", "R3", "--batch", "8");
        assertEquals(2, both.exit(), both.toString());
        assertTrue(both.err().contains("--run R3 sets the models"), both.err());
        Cli lora = Cli.run("bench", "step3", "--run", "R6");
        assertEquals(1, lora.exit(), lora.toString());
        assertTrue(lora.err().contains("LoRA"), lora.err());
        Cli bad = Cli.run("bench", "step3", "--run", "R9");
        assertEquals(1, bad.exit(), bad.toString());
        assertTrue(bad.err().contains("expected R1") && bad.err().contains("cpu-tiny"), bad.err());
        Cli model = Cli.run("bench", "step3", "--actor", "opt-999m");
        assertEquals(2, model.exit(), model.toString());
        assertTrue(model.err().contains("opt-125m"), model.err());
    }

    @Test
    void step3PlotDrawsBothImplementations() throws Exception {
        Path points = tmp.resolve("sweep.jsonl"), png = tmp.resolve("plots/step3.png");
        StringBuilder lines = new StringBuilder();
        for (String impl : List.of("rlhf4j", "torch"))
            for (int b : new int[] {2, 4})
                for (int a : new int[] {16, 32, 64})
                    lines.append(String.format(Locale.ROOT, "{\"impl\":\"%s\",\"batch\":%d,\"answer_len\":%d,"
                            + "\"iter_s\":%.3f}%n", impl, b, a, (impl.equals("torch") ? 2.0 : 1.0) * b * a / 16));
        lines.append("not json\n");
        Files.writeString(points, lines);
        Cli r = Cli.run("bench", "step3-plot", points.toString(), "--out", png.toString());
        assertEquals(0, r.exit(), r.toString());
        assertTrue(r.out().contains("12 points"), r.out());
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(1320, img.getWidth(), "two 660-pixel panels");
        int ours = 0, peer = 0;
        for (int y = 0; y < img.getHeight(); y++)
            for (int x = 0; x < img.getWidth(); x++) {
                int rgb = img.getRGB(x, y) & 0xFFFFFF;
                if (rgb == 0x1F77B4) ours++;
                if (rgb == 0xD62728) peer++;
            }
        assertTrue(ours > 200 && peer > 200, "series pixels: rlhf4j " + ours + ", torch " + peer);
    }

    @Test
    void zeroScalePrintsEveryStageOfBothSetUps() {
        Cli r = Cli.run("bench", "zero-scale");
        assertEquals(0, r.exit(), r.toString());
        for (String row : new String[] {"| opt-13b | 12.9B | 8 (1 node) | 0 |", "| opt-13b | 12.9B | 8 (1 node) | 3 |",
                "| opt-66b | 65.7B | 16 (2 nodes) | 3 |"})
            assertTrue(r.out().contains(row), row + " in\n" + r.out());
        Cli one = Cli.run("bench", "zero-scale", "--model", "opt-1.3b", "--gpus", "2");
        assertEquals(0, one.exit(), one.toString());
        assertEquals(4, one.out().lines().filter(l -> l.startsWith("| opt-1.3b |")).count(), one.out());
    }
}
