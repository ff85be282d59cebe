package io.github.rlhf4j.rlhf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.data.LmBatch;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.GradClip;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * The pretraining mixture (the actor's causal-LM loss scaled by unsup_coef, then a step) and the actor's EMA
 * (ema = beta ema + (1 - beta) actor, DS-Chat's moving_average), on tiny random models.
 */
class PpoMixtureAndEmaTest {
    static final Gpt2Config C = Gpt2Config.tiny(19, 16, 16, 1, 2);
    static final LmBatch BATCH = new LmBatch(2, 6, new int[] {1, 4, 9, 2, 7, 3, 5, 5, 8, 1, 0, 0},
            new int[] {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, new int[] {1, 4, 9, 2, 7, 3, 5, 5, 8, 1, -100, -100});

    static RlhfEngine engine(double unsupLr, boolean ema) {
        CausalLM actor = CausalLM.of(C), reference = CausalLM.of(C);
        RewardModel critic = RewardModel.of(C), reward = RewardModel.of(C);
        Device d = Device.cpu();
        ParameterStore a = ParameterStore.allocate(actor, d, DType.F32, 1, true);
        ParameterStore r = ParameterStore.allocate(reference, d, DType.F32, 1, false);
        ParameterStore c = ParameterStore.allocate(critic, d, DType.F32, 2, true);
        ParameterStore w = ParameterStore.allocate(reward, d, DType.F32, 2, false);
        // a huge clip threshold: the step sees the gradient as it is, so its norm can be compared
        var settings = new Optimized.Settings(unsupLr, 0.0, LrSchedule.constant(0), 1e9);
        return new RlhfEngine(actor, new Optimized(a, settings), reference, r, critic, new Optimized(c, settings),
                reward, w, ema);
    }

    static PpoConfig config(double unsupCoef, double emaBeta) {
        var p = PpoConfig.dsChat(GenerationConfig.greedy(4, 18, 18));
        return new PpoConfig(p.klCtl(), p.clipRewardValue(), p.cliprange(), p.cliprangeValue(), p.gamma(), p.lam(),
                1, p.generation(), unsupCoef, emaBeta, true);
    }

    @Test
    void theMixtureStepsOnTheLanguageModelLossScaledByUnsupCoef() {
        double plainNorm;
        try (RlhfEngine e = engine(1e-3, false); Scope s = Scope.open()) {
            SftTrainer.loss(e.actor(), BATCH).backward();
            plainNorm = GradClip.globalNorm(e.actorOptimizer().store().grad());
        }
        try (RlhfEngine e = engine(1e-3, false)) {
            PpoTrainer t = new PpoTrainer(e, config(27.8, 0));
            double before;
            try (Scope s = Scope.open()) {
                before = SftTrainer.loss(e.actor(), BATCH).item();
                e.actorOptimizer().store().zeroGrad();
            }
            double loss = t.trainUnsupervised(BATCH);
            assertEquals(before, loss, 1e-6, "it returns the unscaled loss");
            assertEquals(27.8 * plainNorm, e.actorOptimizer().lastGradNorm(), 1e-4 * 27.8 * plainNorm,
                    "the gradient is unsup_coef times the plain one");
            assertEquals(1, e.actorOptimizer().steps());
            try (Scope s = Scope.open()) {
                assertTrue(SftTrainer.loss(e.actor(), BATCH).item() < before, "the step lowers the loss");
            }
        }
    }

    @Test
    void theEmaFollowsTheActorAtBeta() {
        try (RlhfEngine e = engine(1e-2, true)) {
            PpoTrainer t = new PpoTrainer(e, config(1.0, 0.9));
            float[] start = e.actorOptimizer().store().data().toFloatArray();
            t.trainUnsupervised(BATCH);
            t.updateEma();
            float[] now = e.actorOptimizer().store().data().toFloatArray();
            float[] ema = e.actorEma().shadow().toFloatArray();
            double worst = 0, moved = 0;
            for (int i = 0; i < now.length; i++) {
                worst = Math.max(worst, Math.abs(ema[i] - (0.9 * start[i] + 0.1 * now[i])));
                moved = Math.max(moved, Math.abs(now[i] - start[i]));
            }
            assertTrue(moved > 1e-3, "the actor moved");
            assertTrue(worst < 1e-6, "ema = 0.9 start + 0.1 actor, off by " + worst);
        }
        try (RlhfEngine e = engine(1e-2, false)) {
            new PpoTrainer(e, config(1.0, 0.0)).updateEma(); // no EMA: a no-op, no failure
        }
    }
}
