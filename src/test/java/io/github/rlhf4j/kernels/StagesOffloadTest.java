package io.github.rlhf4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.rlhf.Stages;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.serve.TestModels;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --offload} through the stages, with the model on the CUDA backend run by the emulation layer: step 1 with
 * the optimizer offloaded to the host, checkpointed every 2 of 4 steps; then the run is resumed from checkpoint 2 and
 * must end with the uninterrupted run's bytes. That needs the host's fp32 master weights to take the checkpoint's
 * weights on resume: with the masters of the freshly loaded model, step 3 would write the start's weights back.
 */
class StagesOffloadTest {
    @TempDir
    Path tmp;

    @Test
    void offloadedStepOneResumesToTheUninterruptedRunsBytes() throws IOException, Exception {
        Device gpu = Emulated.get().device();
        Path init = TestModels.make(tmp.resolve("init"), "opt_style", 64, 5);
        Path hh = Path.of(getClass().getResource("/fixtures/data/hh-rlhf.jsonl").toURI());
        Stages.Data data = new Stages.Data(List.of(hh), "1,1,1", tmp.resolve("cache"), 7);
        Stages.Training four = new Stages.Training(2, 20, 4, "linear", 1);
        Stages.ModelOptions offload = Stages.ModelOptions.NONE.withOffload(true);
        Path actor = tmp.resolve("out/actor"), checkpoints = tmp.resolve("out/checkpoints");
        Stages.SftSettings s = new Stages.SftSettings(data, init, false, 48, four, 1e-3, 0.0, actor,
                tmp.resolve("out/s1.jsonl"), offload);

        StringWriter text = new StringWriter();
        Stages.sft(s, new Stages.RunOptions(checkpoints, 2, 0, false, false, null).on(gpu), new PrintWriter(text, true));
        assertTrue(text.toString().contains("step 1: --offload: the AdamW state"), text.toString());
        Path reference = tmp.resolve("reference.safetensors");
        Files.copy(actor.resolve("model.safetensors"), reference);
        assertTrue(Files.mismatch(init.resolve("model.safetensors"), reference) >= 0, "step 1 trained nothing");

        // as a run killed after step 3 leaves it: checkpoint-4 and the output never written
        delete(checkpoints.resolve("step1/checkpoint-4"));
        delete(actor);
        StringWriter again = new StringWriter();
        Stages.sft(s, new Stages.RunOptions(checkpoints, 2, 0, true, false, null).on(gpu), new PrintWriter(again, true));
        assertTrue(again.toString().contains("step 1: resuming from"), again.toString());
        assertEquals(-1, Files.mismatch(reference, actor.resolve("model.safetensors")),
                "the resumed offloaded run ends elsewhere than the uninterrupted one");

        // on the CPU there is nothing to move: said, and trained as without the flag
        StringWriter cpu = new StringWriter();
        Stages.sft(new Stages.SftSettings(data, init, false, 48, four, 1e-3, 0.0, tmp.resolve("cpu/actor"),
                tmp.resolve("cpu/s1.jsonl"), offload), Stages.RunOptions.NONE, new PrintWriter(cpu, true));
        assertTrue(cpu.toString().contains("step 1: --offload: the model trains on the CPU"), cpu.toString());
    }

    private static void delete(Path p) throws IOException {
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) Files.delete(q);
        }
    }
}
