package io.github.rlhf4j.bench;

/**
 * The step-3 suite of {@code shared/notes/performance.md} (DSC-1GPU): prompt 256 + answer 256 tokens, one PPO epoch,
 * the actor and critic shapes and batch of each run, with the floor that note publishes for one H100 (ms per sequence
 * and hours per epoch, two warm-up iterations then the median of the timed ones).
 */
public enum Step3Run {
    R1("opt-125m", "opt-125m", 256, false, 2.8, 0.20),
    R2("opt-350m", "opt-350m", 256, false, 7.9, 0.58),
    R3("opt-1.3b", "opt-350m", 64, false, 21.6, 1.58),
    R4("opt-1.3b", "opt-350m", 256, false, 18.8, 1.38),
    R5("opt-2.7b", "opt-350m", 64, false, 39.1, 2.87),
    R6("opt-6.7b", "opt-350m", 64, true, 75.5, 5.54);

    public static final int PROMPT_LEN = 256, ANSWER_LEN = 256, WARMUP = 2;

    private final String actor, critic;
    private final int batch;
    private final boolean loraActor;
    private final double floorMsPerSeq, floorHoursPerEpoch;

    Step3Run(String actor, String critic, int batch, boolean loraActor, double floorMsPerSeq,
             double floorHoursPerEpoch) {
        this.actor = actor;
        this.critic = critic;
        this.batch = batch;
        this.loraActor = loraActor;
        this.floorMsPerSeq = floorMsPerSeq;
        this.floorHoursPerEpoch = floorHoursPerEpoch;
    }

    public String actor() {
        return actor;
    }

    public String critic() {
        return critic;
    }

    public int batch() {
        return batch;
    }

    /** R6 trains the OPT-6.7B actor through LoRA adapters. */
    public boolean loraActor() {
        return loraActor;
    }

    /** The published H100 floor, ms per sequence. */
    public double floorMsPerSeq() {
        return floorMsPerSeq;
    }

    /** The published H100 floor, hours per epoch. */
    public double floorHoursPerEpoch() {
        return floorHoursPerEpoch;
    }

    /**
     * What DeepSpeed-Chat published for this actor and critic (performance.md), or null when it published nothing for
     * these shapes. Their runs differ from ours in hardware (A100) and batching, so these stand beside ours, not
     * against it.
     */
    public static String published(String actor, String critic) {
        String a = OptPresets.canonical(actor), c = OptPresets.canonical(critic);
        if ("opt-350m".equals(c) && "opt-1.3b".equals(a))
            return "OPT-1.3B + OPT-350M: 11.7 h/epoch on 1x A100-80G, 15.4 h on 1x A100-40G, 2 h on 8x A100-40G; "
                    + "0.214 s/seq per GPU on 8x A100-40G (0.114 generation incl. experience forwards, 0.069 training, "
                    + "0.031 other); 23.8 / 62.9 / 43.4 TFLOP/s per A100 (generation / training / effective)";
        if ("opt-350m".equals(c) && "opt-6.7b".equals(a))
            return "OPT-6.7B + OPT-350M: 32.9 / 100.7 / 71.2 TFLOP/s per A100 (generation / training / effective)";
        return null;
    }
}
