package io.github.rlhf4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The acceptance run: {@code bin/rlhf4j train} with no flags, the whole embedded demo (all three steps, the
 * default seed), must end with PPO beating SFT on the checker, not only on the reward model's score. The figures come
 * from the run's summary.json; the margin asked for (0.05, on 4 sampled answers to each held-out prompt) is a third
 * of what the default seed gives (0.28 -> 0.44), so thread-count rounding cannot flip it, while a PPO stage that
 * learned nothing (or the wrong sign of anything) cannot pass it.
 */
class DemoPpoBeatsSftTest {
    @TempDir
    Path tmp;

    @Test
    void theDefaultDemoEndsWithPpoBeatingSftOnTheChecker() throws Exception {
        Path out = tmp.resolve("output");
        Cli r = Cli.run("train", "--output-dir", out.toString());
        assertEquals(0, r.exit(), r.toString());
        JsonNode s = new ObjectMapper().readTree(out.resolve("summary.json").toFile());
        double rm = s.get("rm_accuracy").asDouble(), sft = s.get("sft_checker_accuracy").asDouble();
        double ppo = s.get("ppo_checker_accuracy").asDouble();
        System.out.printf("DemoPpoBeatsSftTest: rm accuracy %.3f, checker accuracy sft %.3f -> ppo %.3f, reward %.3f -> "
                + "%.3f%n", rm, sft, ppo, s.get("sft_reward").asDouble(), s.get("ppo_reward").asDouble());
        assertTrue(rm > 0.8, "the reward model ranks held-out pairs: accuracy " + rm);
        assertTrue(ppo > sft + 0.05, "PPO must improve the checker's accuracy: " + sft + " -> " + ppo);
        assertTrue(s.get("ppo_reward").asDouble() > s.get("sft_reward").asDouble(), s.toString());
    }
}
