package io.github.rlhf4j.rlhf;

/**
 * The embedded demo's settings ({@code bin/rlhf4j train} without model flags), all in one place. The defaults come
 * from the tuning runs of {@code DemoExperiment} (2 cores, a GPT-2 of about 0.1M parameters on the reverse-a-word
 * task): SFT at lr 2e-3 for 700 steps on demonstrations 55% right, whose sampled answers (temperature 1) are then
 * right 16-30% of the time (seeds 1, 2, 1234); the reward model at 5e-4 for 1,000 steps on pairs whose rejected
 * answers are the SFT actor's own mistakes; PPO at actor lr 5e-5 for 200 steps with kl_ctl 0.3 (three times
 * DeepSpeed-Chat's, to keep step 3 near the SFT actor). Through {@code train}, the sampled answers' checker accuracy
 * went 0.28 -> 0.44 (seed 1234), 0.16 -> 0.22 (seed 1) and 0.23 -> 0.25 (seed 2); at kl_ctl 0.1, 0.28 -> 0.42,
 * 0.16 -> 0.21 and 0.23 -> 0.19 (seed 2's run drifted, its KL above 3).
 *
 * @param rows preference rows written (split 2,4,4 across the steps, 10% of each part held out)
 * @param demoCorrect the fraction of step 1's demonstrations that are right ({@link DemoTask#writeData})
 * @param maxSeqLen steps 1 and 2's sequence length; prompts take at most {@code maxPromptSeqLen} tokens, answers
 *     {@code maxAnswerSeqLen}
 * @param ppoScheduler the step-3 schedule of both models (warm-up 0)
 * @param enableEma whether step 3 keeps an EMA of the actor (saved as {@code actor_ema})
 */
public record DemoSettings(int rows, double demoCorrect, int nEmbd, int nLayer, int nHead, int batch, int maxSeqLen, int maxPromptSeqLen,
                           int maxAnswerSeqLen, int sftSteps, double sftLr, int rmSteps, double rmLr, int ppoSteps,
                           double actorLr, double criticLr, String ppoScheduler, double temperature, double klCtl,
                           long seed, boolean enableEma) {
    public static DemoSettings defaults() {
        return new DemoSettings(6000, 0.55, 64, 2, 4, 32, 24, 12, 10, 700, 2e-3, 1000, 5e-4, 200, 5e-5, 1e-4, "constant",
                1.0, 0.3, 1234, false);
    }

    /** The same task with every stage capped at {@code maxSteps} optimizer steps (0: no cap). */
    public DemoSettings withMaxSteps(long maxSteps) {
        if (maxSteps <= 0) return this;
        int cap = (int) Math.min(Integer.MAX_VALUE, maxSteps);
        return new DemoSettings(rows, demoCorrect, nEmbd, nLayer, nHead, batch, maxSeqLen, maxPromptSeqLen, maxAnswerSeqLen,
                Math.min(sftSteps, cap), sftLr, Math.min(rmSteps, cap), rmLr, Math.min(ppoSteps, cap), actorLr,
                criticLr, ppoScheduler, temperature, klCtl, seed, enableEma);
    }

    public DemoSettings withRows(int n) {
        return new DemoSettings(n, demoCorrect, nEmbd, nLayer, nHead, batch, maxSeqLen, maxPromptSeqLen, maxAnswerSeqLen, sftSteps,
                sftLr, rmSteps, rmLr, ppoSteps, actorLr, criticLr, ppoScheduler, temperature, klCtl, seed, enableEma);
    }

    public DemoSettings withSeed(long s) {
        return new DemoSettings(rows, demoCorrect, nEmbd, nLayer, nHead, batch, maxSeqLen, maxPromptSeqLen, maxAnswerSeqLen,
                sftSteps, sftLr, rmSteps, rmLr, ppoSteps, actorLr, criticLr, ppoScheduler, temperature, klCtl, s,
                enableEma);
    }

    public DemoSettings withEma(boolean on) {
        return new DemoSettings(rows, demoCorrect, nEmbd, nLayer, nHead, batch, maxSeqLen, maxPromptSeqLen, maxAnswerSeqLen,
                sftSteps, sftLr, rmSteps, rmLr, ppoSteps, actorLr, criticLr, ppoScheduler, temperature, klCtl, seed,
                on);
    }
}
