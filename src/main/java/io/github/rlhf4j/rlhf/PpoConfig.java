package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.generate.GenerationConfig;

/**
 * Step 3's settings, DeepSpeed-Chat's names and defaults: the KL coefficient and reward clip of the rewards, the PPO
 * clip ranges of both losses, GAE's gamma and lambda, PPO epochs over each experience batch, how answers are sampled
 * (max_answer_seq_len is {@code generation.maxNewTokens()}), the pretraining-mixture coefficient, the EMA beta
 * (0: no EMA), and whether sequences are scored at the positions they were generated at ({@code positionsFromMask},
 * the default; see {@link PpoTrainer#positions}) or, as DS-Chat's code does, at each family's default positions.
 */
public record PpoConfig(double klCtl, double clipRewardValue, double cliprange, double cliprangeValue, double gamma,
                        double lam, int ppoEpochs, GenerationConfig generation, double unsupCoef, double emaBeta,
                        boolean positionsFromMask) {
    public PpoConfig {
        if (ppoEpochs <= 0) throw new IllegalArgumentException("ppo_epochs = " + ppoEpochs + " must be > 0");
        if (!(emaBeta >= 0 && emaBeta < 1)) throw new IllegalArgumentException("ema beta " + emaBeta + " must be in [0, 1)");
        if (!(cliprange > 0) || !(cliprangeValue > 0) || !(clipRewardValue > 0))
            throw new IllegalArgumentException("clip ranges must be > 0");
    }

    /** DS-Chat's constants (kl_ctl 0.1, reward clip 5, clip ranges 0.2, gamma 1, lambda 0.95), one PPO epoch. */
    public static PpoConfig dsChat(GenerationConfig generation) {
        return new PpoConfig(PpoMath.KL_CTL, PpoMath.CLIP_REWARD_VALUE, PpoMath.CLIPRANGE, PpoMath.CLIPRANGE_VALUE,
                PpoMath.GAMMA, PpoMath.LAM, 1, generation, 27.8, 0.0, true);
    }

    public PpoConfig withPpoEpochs(int n) {
        return new PpoConfig(klCtl, clipRewardValue, cliprange, cliprangeValue, gamma, lam, n, generation, unsupCoef,
                emaBeta, positionsFromMask);
    }

    public PpoConfig withEma(double beta) {
        return new PpoConfig(klCtl, clipRewardValue, cliprange, cliprangeValue, gamma, lam, ppoEpochs, generation,
                unsupCoef, beta, positionsFromMask);
    }

    public PpoConfig withKlCtl(double kl) {
        return new PpoConfig(kl, clipRewardValue, cliprange, cliprangeValue, gamma, lam, ppoEpochs, generation,
                unsupCoef, emaBeta, positionsFromMask);
    }

    /** With {@code false}: score at each family's default positions, exactly as DS-Chat's code calls the models. */
    public PpoConfig withPositionsFromMask(boolean on) {
        return new PpoConfig(klCtl, clipRewardValue, cliprange, cliprangeValue, gamma, lam, ppoEpochs, generation,
                unsupCoef, emaBeta, on);
    }
}
