package io.github.rlhf4j.bench;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.OptConfig;
import io.github.rlhf4j.model.RewardModel;
import java.util.Locale;

/**
 * The least time one step-3 iteration can take on a machine, as {@code shared/notes/performance.md} defines it:
 * FLOPs = 2 x matmul parameters x tokens plus causal attention at half the context (4 x T/2 x hidden x layers per
 * token); a training pass costs 3 forwards (2 with a LoRA actor: no weight gradients); each decode step moves the
 * weights once (2 bytes a parameter in bf16) and reads the K and V caches (B x context x 2 x hidden x layers elements)
 * and takes the longer of its FLOP time and its byte time; AdamW moves ~28 bytes per trained parameter; every other
 * phase is its FLOPs over the peak. Activations, norms and the sampler are free: this is a floor, not a model.
 *
 * <p>The phases are those of the timing table: generation (prefill of the prompts, the LM head only at the last
 * position, then one decode step per answer token), experience forwards (actor and reference logits, reward and
 * critic scores over prompt + answer), actor training (forward, backward, AdamW) and critic training.
 *
 * @param prefill   seconds of the prompts' forward pass
 * @param decode    seconds of the answer-length decode steps
 * @param actorForward one actor (or reference) forward over the full sequences
 * @param criticForward one critic (or reward) forward over the full sequences
 * @param actorBackward the actor's training forward + backward
 * @param criticBackward the critic's training forward + backward
 * @param actorAdamW   the actor's optimizer step (0 with LoRA: its few adapter weights are neglected)
 * @param criticAdamW  the critic's optimizer step
 * @param generationFlops FLOPs of generation (prefill + decode)
 * @param experienceFlops FLOPs of the four experience forwards
 * @param trainingFlops   FLOPs of both training passes
 */
public record Step3Floor(Machine machine, int batch, double prefill, double decode, double actorForward,
                         double criticForward, double actorBackward, double criticBackward, double actorAdamW,
                         double criticAdamW, double generationFlops, double experienceFlops, double trainingFlops) {
    /** DeepSpeed-Chat's epoch: 264,292 prompt/answer pairs. */
    public static final long EPOCH_PAIRS = 264_292;

    /** AdamW with fp32 master weights and moments: read and write weight, m and v, read the gradient (~28 bytes). */
    public static final double ADAMW_BYTES_PER_PARAM = 28;

    /**
     * A machine's ceilings: dense GEMM FLOP/s, memory bytes/s (read plus written; infinite: bytes not counted), and
     * the bytes of a weight and of a KV-cache element in the precision it runs.
     */
    public record Machine(String name, double flops, double bytesPerSecond, int weightBytes, int kvBytes) {
        public Machine {
            if (!(flops > 0)) throw new IllegalArgumentException("peak FLOP/s " + flops + " must be > 0");
            if (!(bytesPerSecond > 0)) throw new IllegalArgumentException("bandwidth " + bytesPerSecond + " must be > 0");
        }

        /** One H100 80GB as measured there: 798 TFLOP/s bf16 cuBLAS GEMM, 3.0 TB/s copy; bf16 weights and cache. */
        public static final Machine H100 = new Machine("H100 80GB, bf16 (798 TFLOP/s, 3.0 TB/s)", 798e12, 3.0e12, 2, 2);

        /**
         * A CPU running rlhf4j in f32 at {@code gflops} (a measured GEMM rate); {@code gbs} its memory bandwidth in
         * GB/s, or 0 when unknown (then bytes are not counted and the floor is the compute floor alone).
         */
        public static Machine cpu(double gflops, double gbs) {
            String bw = gbs > 0 ? String.format(Locale.ROOT, ", %.0f GB/s", gbs) : ", compute only";
            return new Machine(String.format(Locale.ROOT, "this CPU, f32 (%.0f GFLOP/s%s)", gflops, bw),
                    gflops * 1e9, gbs > 0 ? gbs * 1e9 : Double.POSITIVE_INFINITY, 4, 4);
        }
    }

    /** The shape facts the floor needs of one model. */
    public record Shape(long parameters, long matmulParameters, long lmHeadParameters, int hidden, int layers) {
        /** The actor's (a causal LM: its LM head is a matmul over the vocabulary). */
        public static Shape causalLm(OptConfig c) {
            return new Shape(CausalLM.of(c).parameterCount(), blocks(c) + (long) c.vocabSize() * c.wordEmbedProjDim(),
                    (long) c.vocabSize() * c.wordEmbedProjDim(), c.hiddenSize(), c.numHiddenLayers());
        }

        /** The critic's (base model and a scalar value head). */
        public static Shape rewardModel(OptConfig c) {
            return new Shape(RewardModel.of(c).parameterCount(), blocks(c) + c.wordEmbedProjDim(), 0, c.hiddenSize(),
                    c.numHiddenLayers());
        }

        // q, k, v, out projections and the two FFN matrices per layer, and opt-350m's 512 <-> 1024 projections
        private static long blocks(OptConfig c) {
            long h = c.hiddenSize(), f = c.ffnDim();
            long proj = c.projects() ? 2 * h * c.wordEmbedProjDim() : 0;
            return c.numHiddenLayers() * (4 * h * h + 2 * h * f) + proj;
        }
    }

    /** The floor of one iteration of {@code actor} + {@code critic} at batch B, prompt P + answer A tokens. */
    public static Step3Floor of(Machine m, Shape actor, Shape critic, int batch, int promptLen, int answerLen,
                                boolean loraActor) {
        if (batch < 1 || promptLen < 1 || answerLen < 1)
            throw new IllegalArgumentException("batch, prompt and answer length must be >= 1");
        double b = batch, p = promptLen, t = promptLen + answerLen;
        double f = m.flops(), bw = m.bytesPerSecond();
        // prefill: the prompts through the blocks, the LM head only where the first answer token is picked
        double prefillFlops = b * p * (2.0 * (actor.matmulParameters() - actor.lmHeadParameters())
                + attention(actor, promptLen));
        double decodeFlops = 0, decode = 0;
        for (int k = 0; k < answerLen; k++) {
            double ctx = p + k; // cached tokens read by this step
            double flops = b * (2.0 * actor.matmulParameters() + 4 * ctx * actor.hidden() * actor.layers());
            double bytes = (double) m.weightBytes() * actor.parameters()
                    + b * ctx * 2 * m.kvBytes() * actor.hidden() * actor.layers();
            decodeFlops += flops;
            decode += Math.max(flops / f, bytes / bw);
        }
        double actorFwdFlops = b * t * (2.0 * actor.matmulParameters() + attention(actor, promptLen + answerLen));
        double criticFwdFlops = b * t * (2.0 * critic.matmulParameters() + attention(critic, promptLen + answerLen));
        double actorTrainFlops = (loraActor ? 2 : 3) * actorFwdFlops, criticTrainFlops = 3 * criticFwdFlops;
        return new Step3Floor(m, batch, prefillFlops / f, decode, actorFwdFlops / f, criticFwdFlops / f,
                actorTrainFlops / f, criticTrainFlops / f,
                loraActor ? 0 : ADAMW_BYTES_PER_PARAM * actor.parameters() / bw,
                ADAMW_BYTES_PER_PARAM * critic.parameters() / bw, prefillFlops + decodeFlops,
                2 * (actorFwdFlops + criticFwdFlops), actorTrainFlops + criticTrainFlops);
    }

    /** Causal attention FLOPs per token over a T-token sequence: QK^T and AV at the mean context T/2. */
    private static double attention(Shape s, int tokens) {
        return 4.0 * (tokens / 2.0) * s.hidden() * s.layers();
    }

    public double generation() {
        return prefill + decode;
    }

    public double experience() {
        return 2 * actorForward + 2 * criticForward;
    }

    public double actorTraining() {
        return actorBackward + actorAdamW;
    }

    public double criticTraining() {
        return criticBackward + criticAdamW;
    }

    /** Seconds per iteration. */
    public double iteration() {
        return generation() + experience() + actorTraining() + criticTraining();
    }

    public double msPerSequence() {
        return iteration() / batch * 1e3;
    }

    /** Hours per DeepSpeed-Chat epoch: ceil(264292 / B) iterations (no start-up time). */
    public double hoursPerEpoch() {
        return iterationsPerEpoch(batch) * iteration() / 3600;
    }

    public double totalFlops() {
        return generationFlops + experienceFlops + trainingFlops;
    }

    /** Iterations in one epoch at batch B. */
    public static long iterationsPerEpoch(int batch) {
        return (EPOCH_PAIRS + batch - 1) / batch;
    }
}
