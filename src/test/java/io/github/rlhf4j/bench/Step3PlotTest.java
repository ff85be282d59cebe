package io.github.rlhf4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Which figure a sweep point is drawn at: the median iteration, or the fastest one where the line lists them. */
class Step3PlotTest {
    @TempDir
    Path tmp;

    @Test
    void readsTheMedianOrTheFastestIteration() throws Exception {
        Path f = tmp.resolve("points.jsonl");
        Files.writeString(f, """
                {"impl":"rlhf4j","batch":4,"answer_len":64,"iter_s":2.0,"iter_times_s":[3.0,1.5,2.0]}
                {"impl":"torch","batch":4,"answer_len":64,"iter_s":5.0}
                {"impl":"torch","batch":"4","answer_len":64,"iter_s":5.0}
                """);
        assertEquals(List.of(new Step3Plot.Point("rlhf4j", 4, 64, 2.0), new Step3Plot.Point("torch", 4, 64, 5.0)),
                Step3Plot.read(f));
        assertEquals(List.of(new Step3Plot.Point("rlhf4j", 4, 64, 1.5), new Step3Plot.Point("torch", 4, 64, 5.0)),
                Step3Plot.read(f, Step3Plot.Stat.MIN));
    }
}
