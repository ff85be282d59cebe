package io.github.rlhf4j.dist;

import io.github.rlhf4j.bench.OptPresets;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ModelConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * ZeRO on paper: for a model on N GPUs, what each stage keeps per GPU and what a training step moves per GPU, from
 * the partitioner's own plan ({@link ZeroPlan}, the model's real layer groups, nothing allocated), against the
 * link speeds and the compute floor, so a user sees which stage and how many GPUs a model needs.
 *
 * <p>Assumptions, stated in the table's header: bf16 weights and gradients (2 bytes each) with fp32 master weights
 * and AdamW moments (12 bytes per parameter), as DeepSpeed's mixed precision keeps them; collectives in bf16 over a
 * ring, each GPU sending (N - 1) / N of the paper's volume; NVLink at 900 GB/s per H100 within a node, InfiniBand at
 * 400 Gb/s (50 GB/s) per GPU between nodes (a ring spanning nodes runs at the slower link); the compute floor of one
 * step: 6 x parameters x tokens per GPU at 798 TFLOP/s (bf16 dense). Activations, the KV cache and the frozen
 * models of step 3 come on top of the model states shown there; {@link #step3} counts them for step 3.
 */
public final class ZeroScale {
    public static final double NVLINK_BYTES_PER_S = 900e9, IB_BYTES_PER_S = 400e9 / 8, BF16_FLOPS = 798e12;
    public static final long GPU_BYTES = 80L << 30;

    /** One row: a model on {@code gpus} GPUs ({@code perNode} per node) at a ZeRO stage. */
    public record Row(String model, long parameters, int gpus, int perNode, int stage, ZeroPlan.Memory memory,
                      long bytesSentPerGpu, double commSeconds, double computeSeconds) {
        public boolean fits() {
            return memory.total() <= GPU_BYTES;
        }
    }

    private ZeroScale() {}

    /** The rows of {@code preset} on {@code gpus} GPUs, {@code perNode} per node, stages 0 to 3. */
    public static List<Row> rows(String preset, int gpus, int perNode, long tokensPerGpu) {
        ModelConfig config = OptPresets.config(preset, true);
        CausalLM model = CausalLM.of(config);
        long params = model.parameterCount();
        ZeroPlan plan = new ZeroPlan(ZeroPlan.layerGroups(model), gpus, 2);
        double bandwidth = gpus <= perNode ? NVLINK_BYTES_PER_S : IB_BYTES_PER_S;
        double compute = 6.0 * params * tokensPerGpu / BF16_FLOPS;
        List<Row> rows = new ArrayList<>();
        for (int stage = 0; stage <= 3; stage++) {
            long sent = plan.step(stage).bytesPerRank() * (gpus - 1) / gpus;
            String name = OptPresets.canonical(preset);
            rows.add(new Row(name != null ? name : preset, params, gpus, perNode, stage,
                    plan.memoryPerRank(stage, 2, 2, 12), sent, sent / bandwidth, compute));
        }
        return rows;
    }

    /** The markdown table of {@link #rows} for several set-ups. */
    public static String table(List<Row> rows, long tokensPerGpu) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "Model states per GPU (bf16 weights and gradients, fp32 master weights and "
                + "AdamW moments: 16 bytes per parameter unpartitioned) and one training step's communication per GPU "
                + "(bf16 ring collectives: NVLink 900 GB/s within a node, InfiniBand 50 GB/s per GPU across nodes) "
                + "against the compute floor of that step (6 x parameters x %,d tokens per GPU at 798 TFLOP/s). "
                + "Activations come on top; \"fits\" is the model states alone in 80 GiB.%n%n", tokensPerGpu));
        sb.append("| model | parameters | GPUs | ZeRO stage | params GiB | grads GiB | optimizer GiB | total GiB | fits 80 GiB "
                + "| sent per GPU per step GB | comm ms | compute floor ms | comm / compute |\n");
        sb.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (Row r : rows) {
            double gb = 1L << 30;
            sb.append(String.format(Locale.ROOT, "| %s | %.1fB | %d (%s) | %d | %.1f | %.1f | %.1f | %.1f | %s | %.2f | "
                            + "%.0f | %.0f | %.2f |%n", r.model(), r.parameters() / 1e9, r.gpus(),
                    r.gpus() <= r.perNode() ? "1 node" : (r.gpus() / r.perNode()) + " nodes", r.stage(),
                    r.memory().parameterBytes() / gb, r.memory().gradientBytes() / gb,
                    r.memory().optimizerBytes() / gb, r.memory().total() / gb, r.fits() ? "yes" : "no",
                    r.bytesSentPerGpu() / 1e9, r.commSeconds() * 1e3, r.computeSeconds() * 1e3,
                    r.commSeconds() / r.computeSeconds()));
        }
        return sb.toString();
    }

    /**
     * What a layer's backward keeps from its forward in fp32, in bytes per token and hidden unit, for OPT's pre-LN
     * layer (ffn = 4 x hidden, no dropout): the inputs of its two layer norms and four linear maps, q, k, v and the
     * attention output, the MLP's activations before and after the ReLU (4 x hidden each), 64 bytes, and the
     * attention's row statistics and the norms' (flash-style attention keeps no score matrix, so nothing grows with
     * the sequence squared). Fitted to the peaks {@code ActivationMemoryTest} measures on the CPU backend, which
     * holds {@link #trainingActivationBytes} to them on other shapes.
     */
    public static final long LAYER_SAVED_PER_TOKEN_UNIT = 72;
    /** Outside the layers, per token and hidden unit: the embeddings' output, the final norm, the backward's gradients of the hidden states. */
    public static final long OUTSIDE_LAYERS_PER_TOKEN_UNIT = 52;
    /** The LM head and the log-probabilities in fp32, in bytes per token and vocabulary entry: the logits and their gradient. */
    public static final long HEAD_PER_TOKEN_VOCAB = 8;

    /**
     * The activation memory of one training forward and backward of a model of {@code c}'s shapes on {@code batch}
     * sequences of {@code seq} tokens, fp32, at its peak: every layer's saves ({@link #LAYER_SAVED_PER_TOKEN_UNIT})
     * or, with gradient checkpointing, each layer's input alone (4 bytes per token and unit) plus one layer's saves
     * and its input and input gradient while its backward recomputes it; what lies outside the layers
     * ({@link #OUTSIDE_LAYERS_PER_TOKEN_UNIT}); and the LM head's logits ({@code lmHead}:
     * {@link #HEAD_PER_TOKEN_VOCAB}), or a value head's next to nothing (the critic).
     */
    public static long trainingActivationBytes(ModelConfig c, long batch, long seq, boolean checkpointing,
                                               boolean lmHead) {
        long tokens = batch * seq, th = tokens * c.hiddenSize();
        long layers = checkpointing ? (4L * c.numLayers() + LAYER_SAVED_PER_TOKEN_UNIT + 8) * th
                : LAYER_SAVED_PER_TOKEN_UNIT * c.numLayers() * th;
        return layers + OUTSIDE_LAYERS_PER_TOKEN_UNIT * th + (lmHead ? HEAD_PER_TOKEN_VOCAB * tokens * c.vocabSize() : 0);
    }

    /** The fp32 KV cache of generating {@code batch} sequences of up to {@code seq} tokens (keys and values). */
    public static long kvCacheBytes(ModelConfig c, long batch, long seq) {
        return 2L * 4 * c.numLayers() * batch * seq * c.numKvHeads() * c.headDim();
    }

    /**
     * A step-3 set-up as {@code deploy/} runs it: the actor and critic presets, the GPUs and their memory, the ZeRO
     * stage of both trained models, the actor's LoRA rank with or without {@code --only-optimize-lora} (the critic
     * trains whole), {@code --offload-reference-model} and {@code --enable-ema}; the sequences each GPU takes at once
     * ({@code --per-device-train-batch-size}) and their length (prompt and answer), and whether the actor trains with
     * gradient checkpointing (the critic does not, as DS-Chat's scripts leave it).
     */
    public record Step3Setup(String name, String actor, String critic, int gpus, long gpuBytes, int stage,
                             int actorLoraDim, boolean onlyOptimizeLora, boolean offloadReference, boolean ema,
                             int batch, int seq, boolean actorCheckpointing) {}

    /**
     * Step 3's model states per GPU for a {@link Step3Setup}, in fp32 as rlhf4j trains (4 bytes a weight and a
     * gradient, 8 for the two AdamW moments; there is no separate master copy), padding left out: each trained model's
     * parameters (partitioned at stage 3), gradients of its trainable parameters (at stages 2-3) and moments (at
     * stages 1-3); the frozen reference and reward model (partitioned beside them at stage 3, or whole in host memory
     * with {@code offloadReference}); the EMA (as the actor's parameters); at stage 3 the largest actor layer
     * twice, gathered whole (the one computing and the next, prefetched); and what gathering the whole actor for
     * generation adds (the hybrid engine). Then the activations ({@link #trainingActivationBytes}: the larger of the
     * actor's and the critic's, which train one after the other) and the actor's KV cache when it generates.
     */
    public record Step3Row(Step3Setup setup, long actorParameters, long actorTrainable, long criticParameters,
                           long actorBytes, long criticBytes, long frozenBytes, long emaBytes, long layerBytes,
                           long hostBytes, long wholeActorMore, int layers, long activationBytes, long kvCacheBytes) {
        /** The model states and the gathered layers. */
        public long total() {
            return actorBytes + criticBytes + frozenBytes + emaBytes + 2 * layerBytes;
        }

        /** The model states, the gathered layers and the larger of training's activations and generation's cache. */
        public long peak() {
            return total() + Math.max(activationBytes, kvCacheBytes);
        }

        /** {@link #peak} fits the GPU. */
        public boolean fits() {
            return peak() <= setup.gpuBytes();
        }

        /**
         * {@code --hybrid-engine auto} gathers the whole actor: it fits with an eighth of the GPU spare, which the
         * KV cache must fit in.
         */
        public boolean hybridEngineFits() {
            return kvCacheBytes <= setup.gpuBytes() / 8
                    && total() + wholeActorMore <= setup.gpuBytes() - setup.gpuBytes() / 8;
        }

        /**
         * When the whole actor does not fit: about how many of its layers {@code --hybrid-engine auto} keeps gathered
         * for a generation phase (the room left, an eighth of the GPU spare or the KV cache if larger, over one
         * layer's bytes).
         */
        public long hybridEngineLayers() {
            long room = setup.gpuBytes() - Math.max(setup.gpuBytes() / 8, kvCacheBytes) - total();
            return layerBytes == 0 || room <= 0 ? 0 : Math.min(layers, room / layerBytes);
        }
    }

    /** {@link Step3Row} of {@code s}, from the models' real parameter counts (nothing allocated). */
    public static Step3Row step3(Step3Setup s) {
        CausalLM actor = CausalLM.of(OptPresets.config(s.actor(), true));
        if (s.actorLoraDim() > 0)
            new io.github.rlhf4j.nn.Lora.Config(s.actorLoraDim(), "decoder.layers.", s.onlyOptimizeLora()).applyTo(actor);
        io.github.rlhf4j.model.RewardModel critic = io.github.rlhf4j.model.RewardModel.of(OptPresets.config(s.critic(), true));
        long pa = actor.parameterCount(), pc = critic.parameterCount(), ta = 0;
        for (var e : actor.namedParameters().entrySet()) if (!e.getValue().isFrozen()) ta += e.getValue().numel();
        int n = s.gpus();
        long np = s.stage() == 3 ? n : 1, ng = s.stage() >= 2 ? n : 1, no = s.stage() >= 1 ? n : 1;
        long actorBytes = 4 * (pa / np + ta / ng) + 8 * (ta / no), criticBytes = 4 * (pc / np + pc / ng) + 8 * (pc / no);
        long frozen = 4 * (pa + pc), frozenBytes = s.offloadReference() ? 0 : frozen / np;
        long layer = 0;
        long[] cuts = ZeroPlan.layerGroups(actor);
        for (int g = 0; g + 1 < cuts.length; g++) layer = Math.max(layer, cuts[g + 1] - cuts[g]);
        ModelConfig ac = OptPresets.config(s.actor(), true), cc = OptPresets.config(s.critic(), true);
        long activations = Math.max(trainingActivationBytes(ac, s.batch(), s.seq(), s.actorCheckpointing(), true),
                trainingActivationBytes(cc, s.batch(), s.seq(), false, false));
        return new Step3Row(s, pa, ta, pc, actorBytes, criticBytes, frozenBytes, s.ema() ? 4 * pa / np : 0,
                s.stage() == 3 ? 4 * layer : 0, s.offloadReference() ? frozen : 0,
                s.stage() == 3 ? 4 * pa - 4 * pa / np : 0, (int) actor.namedParameters().keySet().stream()
                        .map(io.github.rlhf4j.nn.ParameterStore::layerOf).filter(java.util.Objects::nonNull).distinct()
                        .count(), activations, kvCacheBytes(ac, s.batch(), s.seq()));
    }

    /** The three set-ups of {@code deploy/} (DeepSpeed-Chat's t9k example) at the ZeRO stages their scripts set. */
    public static List<Step3Setup> deploySetups() {
        return List.of(new Step3Setup("1x A100-40G", "opt-1.3b", "opt-350m", 1, 40L << 30, 0, 128, false, true, false,
                        8, 512, true),
                new Step3Setup("4x A100-40G", "opt-13b", "opt-350m", 4, 40L << 30, 3, 128, true, true, false, 4, 512,
                        true),
                new Step3Setup("2x 8x A100-80G", "opt-66b", "opt-350m", 16, 80L << 30, 3, 128, true, false, false, 4,
                        512, true));
    }

    /** The markdown table of {@link #step3} rows. */
    public static String step3Table(List<Step3Row> rows) {
        StringBuilder sb = new StringBuilder("Step 3 per GPU as rlhf4j runs it (fp32 weights and gradients, fp32 AdamW "
                + "moments for the trainable parameters; padding left out). \"gathered layers\" is two actor layers "
                + "whole at stage 3 (the one computing and the next, prefetched); \"states\" adds them to the model "
                + "states. \"activations\" is the larger of the actor's (gradient checkpointing as the set-up "
                + "says) and the critic's training forward and backward, fp32, for the set-up's sequences per GPU "
                + "(constants measured on the CPU backend); \"KV cache\" is the actor's when it generates them. "
                + "\"peak\" is the states plus the larger of those two, and \"fits\" compares it with the GPU. "
                + "\"hybrid engine\" is what `--hybrid-engine auto` keeps gathered for a generation phase (with an "
                + "eighth of the GPU spare, or the KV cache's room if larger): the whole actor, else about as many of "
                + "its layers as fit, the others gathered for each token.\n\n");
        sb.append("| set-up | actor | critic | ZeRO | sequences x tokens per GPU | actor trainable | actor GiB | critic "
                + "GiB | reference + reward GiB | gathered layers GiB | states GiB | activations GiB | KV cache GiB "
                + "| peak GiB | GPU GiB | fits | hybrid engine | host GiB |\n");
        sb.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        double gb = 1L << 30;
        for (Step3Row r : rows) {
            Step3Setup s = r.setup();
            sb.append(String.format(Locale.ROOT, "| %s | %s%s | %s | %d | %d x %d%s | %.2fB of %.2fB | %.1f | %.1f | "
                            + "%.1f%s | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %s | %s | %.1f |%n", s.name(), s.actor(),
                    s.actorLoraDim() > 0 ? " + LoRA " + s.actorLoraDim() + (s.onlyOptimizeLora() ? " only" : "") : "",
                    s.critic(), s.stage(), s.batch(), s.seq(), s.actorCheckpointing() ? ", actor checkpointed" : "",
                    r.actorTrainable() / 1e9, r.actorParameters() / 1e9, r.actorBytes() / gb,
                    r.criticBytes() / gb, r.frozenBytes() / gb, s.offloadReference() ? " (on the host)" : "",
                    2 * r.layerBytes() / gb, r.total() / gb, r.activationBytes() / gb, r.kvCacheBytes() / gb,
                    r.peak() / gb, s.gpuBytes() / gb,
                    r.fits() ? "yes" : "no", s.stage() < 3 ? "-" : r.hybridEngineFits() ? "whole"
                            : r.hybridEngineLayers() == 0 ? "layer by layer"
                            : "~" + r.hybridEngineLayers() + " of " + r.layers() + " layers",
                    r.hostBytes() / gb));
        }
        return sb.toString();
    }

    /** Prints the two set-ups: OPT-13B on 8 GPUs (one node) and OPT-66B on 16 (two nodes). */
    public static void main(String[] args) {
        long tokens = args.length > 0 ? Long.parseLong(args[0]) : 16 * 512;
        List<Row> rows = new ArrayList<>(rows("opt-13b", 8, 8, tokens));
        rows.addAll(rows("opt-66b", 16, 8, tokens));
        System.out.print(table(rows, tokens));
        System.out.println();
        System.out.print(step3Table(deploySetups().stream().map(ZeroScale::step3).toList()));
    }
}
