package io.github.rlhf4j.rlhf;

/**
 * The embedded demo's settings ({@code bin/rlhf4j train} without model flags), all in one place. The defaults come
 * from the tuning runs of {@code DemoExperiment} (2 cores, a GPT-2 of about 0.1M parameters on the reverse-a-word
 * task): SFT reaches 100% on the checker near 700 steps at lr 2e-3, the reward model 86-90% pairwise accuracy near
 * 1,000 steps at 5e-4; PPO at actor lr 5e-5 for 200 steps.
 *
 * @param rows preference rows written (split 2,4,4 across the steps, 10% of each part held out)
 * @param maxSeqLen steps 1 and 2's sequence length; prompts take at most {@code maxPromptSeqLen} tokens, answers
 *     {@code maxAnswerSeqLen}
 * @param ppoScheduler the step-3 schedule of both models (warm-up 0)
 * @param enableEma whether step 3 keeps an EMA of the actor (saved as {@code actor_ema})
 */
public record DemoSettings(int rows, int nEmbd, int nLayer, int nHead, int batch, int maxSeqLen, int maxPromptSeqLen,
                           int maxAnswerSeqLen, int sftSteps, double sftLr, int rmSteps, double rmLr, int ppoSteps,
                           double actorLr, double criticLr, String ppoScheduler, double temperature, double klCtl,
                           long seed, boolean enableEma) {
    public static DemoSettings defaults() {
        return new DemoSettings(6000, 64, 2, 4, 32, 24, 12, 10, 700, 2e-3, 1000, 5e-4, 200, 5e-5, 1e-4, "constant",
                1.0, PpoMath.KL_CTL, 1234, false);
    }

    /** The same task with every stage capped at {@code maxSteps} optimizer steps (0: no cap). */
    public DemoSettings withMaxSteps(long maxSteps) {
        if (maxSteps <= 0) return this;
        int cap = (int) Math.min(Integer.MAX_VALUE, maxSteps);
        return new DemoSettings(rows, nEmbd, nLayer, nHead, batch, maxSeqLen, maxPromptSeqLen, maxAnswerSeqLen,
                Math.min(sftSteps, cap), sftLr, Math.min(rmSteps, cap), rmLr, Math.min(ppoSteps, cap), actorLr,
                criticLr, ppoScheduler, temperature, klCtl, seed, enableEma);
    }

    public DemoSettings withRows(int n) {
        return new DemoSettings(n, nEmbd, nLayer, nHead, batch, maxSeqLen, maxPromptSeqLen, maxAnswerSeqLen, sftSteps,
                sftLr, rmSteps, rmLr, ppoSteps, actorLr, criticLr, ppoScheduler, temperature, klCtl, seed, enableEma);
    }

    public DemoSettings withSeed(long s) {
        return new DemoSettings(rows, nEmbd, nLayer, nHead, batch, maxSeqLen, maxPromptSeqLen, maxAnswerSeqLen,
                sftSteps, sftLr, rmSteps, rmLr, ppoSteps, actorLr, criticLr, ppoScheduler, temperature, klCtl, s,
                enableEma);
    }

    public DemoSettings withEma(boolean on) {
        return new DemoSettings(rows, nEmbd, nLayer, nHead, batch, maxSeqLen, maxPromptSeqLen, maxAnswerSeqLen,
                sftSteps, sftLr, rmSteps, rmLr, ppoSteps, actorLr, criticLr, ppoScheduler, temperature, klCtl, seed,
                on);
    }
}
