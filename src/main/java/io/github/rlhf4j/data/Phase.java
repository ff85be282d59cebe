package io.github.rlhf4j.data;

/** The three stages of RLHF, numbered as DeepSpeed-Chat's {@code --step} and {@code train_phase}. */
public enum Phase {
    /** Step 1: supervised fine-tuning on prompt + chosen answer. */
    SFT(1),
    /** Step 2: the reward model, on chosen/rejected pairs. */
    REWARD(2),
    /** Step 3: PPO, from prompts alone. */
    PPO(3);

    private final int step;

    Phase(int step) {
        this.step = step;
    }

    /** 1, 2 or 3. */
    public int step() {
        return step;
    }

    /** The phase of step 1, 2 or 3. */
    public static Phase ofStep(int step) {
        for (Phase p : values())
            if (p.step == step) return p;
        throw new IllegalArgumentException("there is no step " + step + "; the steps are 1, 2 and 3");
    }
}
