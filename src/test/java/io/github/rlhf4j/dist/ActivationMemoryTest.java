package io.github.rlhf4j.dist;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.OptConfig;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.rlhf.PpoMath;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.MemoryPool;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.Locale;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * ZeroScale's step-3 table says how much activation memory OPT-13B and OPT-66B need from two constants and the
 * shapes ({@link ZeroScale#trainingActivationBytes}). This holds that estimate to what the backend really keeps: the
 * peak of live memory over a training forward and backward (the actor's: the LM head and PPO's log-probabilities;
 * the critic's: a value head), for OPT models of several shapes, with and without gradient checkpointing. The
 * constants were fitted to the first three shapes; the last two are new to them.
 */
class ActivationMemoryTest {

    static OptConfig opt(int vocab, int hidden, int layers, int heads) {
        return new OptConfig(vocab, hidden, layers, 4 * hidden, 512, heads, hidden, true, false, true, true, 0.0, 0.02,
                true);
    }

    /** The peak of live bytes above what was live before: the forward, the loss and the backward. */
    static long measured(OptConfig c, int batch, int seq, boolean checkpointing, boolean lmHead) {
        Module model = lmHead ? CausalLM.of(c) : RewardModel.of(c);
        MemoryPool pool = Device.cpu().pool();
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), 5); Scope s = Scope.open()) {
            model.train(true);
            (lmHead ? ((CausalLM) model).base() : ((RewardModel) model).base()).setGradientCheckpointing(checkpointing);
            Random r = new Random(1);
            int[] ids = new int[batch * seq];
            for (int i = 0; i < ids.length; i++) ids[i] = r.nextInt(c.vocabSize());
            Tensor in = Tensor.ofInts(ids, batch, seq);
            long before = pool.liveBytes();
            pool.resetPeakLiveBytes();
            try (Scope step = Scope.open()) {
                Tensor out = lmHead ? PpoMath.gatherLogProbs(((CausalLM) model).forward(in), in)
                        : ((RewardModel) model).scores(in, null);
                out.sum().backward();
            }
            return pool.peakLiveBytes() - before;
        }
    }

    @Test
    void theEstimateIsWithinAQuarterOfTheMeasuredPeak() {
        // {vocab, hidden, layers, heads, batch, seq}
        int[][] shapes = {{512, 128, 4, 4, 2, 128}, {512, 256, 2, 8, 1, 256}, {4096, 64, 3, 2, 2, 64},
                {1024, 96, 6, 3, 3, 48}, {256, 192, 3, 6, 1, 320}};
        StringBuilder report = new StringBuilder();
        boolean ok = true;
        for (int[] x : shapes)
            for (boolean lmHead : new boolean[] {true, false})
                for (boolean checkpointing : new boolean[] {false, true}) {
                    OptConfig c = opt(x[0], x[1], x[2], x[3]);
                    long got = measured(c, x[4], x[5], checkpointing, lmHead);
                    long estimate = ZeroScale.trainingActivationBytes(c, x[4], x[5], checkpointing, lmHead);
                    double ratio = got / (double) estimate;
                    boolean good = ratio > 0.8 && ratio < 1.25;
                    ok &= good;
                    report.append(String.format(Locale.ROOT, "%n  V %d, h %d, %d layers, %d x %d tokens, %s, %s: "
                                    + "measured %,d B, estimate %,d B, ratio %.3f%s", x[0], x[1], x[2], x[4], x[5],
                            lmHead ? "LM head" : "value head", checkpointing ? "checkpointed" : "whole", got, estimate,
                            ratio, good ? "" : "  <-- off"));
                }
        System.out.println("ActivationMemoryTest:" + report);
        assertTrue(ok, "the activation estimate is off by more than a quarter:" + report);
    }
}
