package io.github.rlhf4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.rlhf.Stages;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.serve.TestModels;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The three stages with the models on the CUDA backend, run through the emulation layer (the kernels' own source on
 * the CPU): step 1 reaches the CPU backend's weights (fp32, different reduction orders: a tolerance), and step 3
 * runs with {@code --offload-reference-model}, the actor and critic on the "GPU" and the frozen reference and reward
 * model on the CPU, their logprobs and rewards crossing through the host.
 */
class StagesOnEmulatedCudaTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    @Test
    void stagesTrainOnTheCudaBackendAndStepThreeOffloadsTheFrozenModels() throws Exception {
        Device gpu = Emulated.get().device();
        Path init = TestModels.make(tmp.resolve("init"), "opt_style", 64, 5);
        Path hh = Path.of(getClass().getResource("/fixtures/data/hh-rlhf.jsonl").toURI());
        Stages.Data data = new Stages.Data(List.of(hh), "1,1,1", tmp.resolve("cache"), 7);
        Stages.Training two = new Stages.Training(2, 20, 2, "constant", 0);

        Path cpuActor = tmp.resolve("cpu/actor"), gpuActor = tmp.resolve("gpu/actor");
        StringWriter text = new StringWriter();
        PrintWriter log = new PrintWriter(text, true);
        Stages.sft(new Stages.SftSettings(data, init, false, 48, two, 1e-3, 0.0, cpuActor, tmp.resolve("cpu/s1.jsonl")),
                Stages.RunOptions.NONE, log);
        Stages.sft(new Stages.SftSettings(data, init, false, 48, two, 1e-3, 0.0, gpuActor, tmp.resolve("gpu/s1.jsonl")),
                Stages.RunOptions.NONE.on(gpu), log);
        try (HfModel a = HfModel.load(cpuActor, Device.cpu(), DType.F32, false);
             HfModel b = HfModel.load(gpuActor, Device.cpu(), DType.F32, false);
             HfModel before = HfModel.load(init, Device.cpu(), DType.F32, false)) {
            float[] x = a.parameters().data().toFloatArray(), y = b.parameters().data().toFloatArray();
            float[] x0 = before.parameters().data().toFloatArray();
            // AdamW's first steps move each weight by about lr x sign(g): a gradient within rounding of zero may
            // take the other sign on the other backend and move that weight the other way (up to 2 lr per step).
            // So: nearly every weight agrees to rounding, and none is further apart than those sign flips allow.
            double err = 0, moved = 0;
            int apart = 0;
            for (int i = 0; i < x.length; i++) {
                double d = Math.abs(x[i] - y[i]);
                err = Math.max(err, d);
                if (d > 1e-6) apart++;
                moved = Math.max(moved, Math.abs(x[i] - x0[i]));
            }
            System.out.printf("StagesOnEmulatedCudaTest: step 1 weights, max |cpu - cuda| %.2e, %d of %d further "
                    + "apart than 1e-6 (training moved them up to %.2e)%n", err, apart, x.length, moved);
            assertTrue(moved > 1e-4, "step 1 trained nothing");
            assertTrue(apart < x.length / 100, apart + " of " + x.length + " weights differ by more than 1e-6");
            assertTrue(err <= 2 * 2 * 1e-3 + 1e-6, "step 1 on the CUDA backend differs from the CPU by " + err);
        }

        // the losses, computed before each update, agree to fp32 rounding
        List<String> cpuLog = Files.readAllLines(tmp.resolve("cpu/s1.jsonl")), gpuLog = Files.readAllLines(tmp.resolve("gpu/s1.jsonl"));
        for (int i = 0; i < 2; i++) {
            double a = JSON.readTree(cpuLog.get(i)).get("loss").asDouble(), b = JSON.readTree(gpuLog.get(i)).get("loss").asDouble();
            assertEquals(a, b, 1e-5 * Math.abs(a), "step 1 loss at step " + (i + 1));
        }

        Path rm = tmp.resolve("gpu/rm");
        Stages.RewardResult r = Stages.reward(new Stages.RewardSettings(data, init, 48, two, 1e-3, 0.0, rm,
                tmp.resolve("gpu/s2.jsonl")), Stages.RunOptions.NONE.on(gpu), log);
        assertTrue(Double.isFinite(r.lastLoss()), "step 2 loss " + r.lastLoss());

        Stages.PpoSettings ppo = new Stages.PpoSettings(data, gpuActor, rm, 48, 4, two, 1e-4, 1e-4, 0, 0, 1, false,
                null, 27.8, 1.0, 1.0, 0.1, tmp.resolve("gpu/step3"), tmp.resolve("gpu/s3.jsonl"),
                Stages.ModelOptions.NONE, Stages.ModelOptions.NONE, 1, true);
        Stages.PpoResult p = Stages.ppo(ppo, Stages.RunOptions.NONE.on(gpu), log);
        assertEquals(2, p.steps());
        assertTrue(Double.isFinite(p.last().actorLoss()) && Double.isFinite(p.last().criticLoss()), p.last().toString());
        assertTrue(text.toString().contains("on " + gpu + " (reference and reward model on cpu:0)"), text.toString());
    }
}
