package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.data.Batches;
import io.github.rlhf4j.data.DataSplit;
import io.github.rlhf4j.data.Dataset;
import io.github.rlhf4j.data.LmBatch;
import io.github.rlhf4j.data.PairBatch;
import io.github.rlhf4j.data.PairSamples;
import io.github.rlhf4j.data.Phase;
import io.github.rlhf4j.data.PromptBatch;
import io.github.rlhf4j.data.PromptSamples;
import io.github.rlhf4j.data.SftSamples;
import io.github.rlhf4j.data.SplitSpec;
import io.github.rlhf4j.data.TextBlocks;
import io.github.rlhf4j.data.TextEncoder;
import io.github.rlhf4j.data.Tokenizer;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.generate.Generator;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.model.ModelConfig;
import io.github.rlhf4j.model.Models;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.model.Transformer;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.function.BiPredicate;

/**
 * The three stages as DeepSpeed-Chat's {@code step1/2/3 main.py} run them, on the CPU: each reads its split of the
 * data, trains, reports its eval figures, writes its model(s) in Hugging Face layout (with the tokenizer files) and
 * its metrics as JSON Lines. The command line ({@code bin/rlhf4j sft|reward|ppo|train}) is a thin layer over these.
 */
public final class Stages {
    private static final long SHARD = 5L << 30;

    private Stages() {}

    /** {@code --data-path ... --data-split 2,4,4 --data-output-path CACHE --seed N}. */
    public record Data(List<Path> paths, String split, Path cacheDir, long seed) {
        public Data {
            if (paths == null || paths.isEmpty()) throw new IllegalArgumentException("no --data-path given");
            paths = List.copyOf(paths);
            SplitSpec.parse(split); // fails early, naming the part at fault
        }

        DataSplit load() {
            return DataSplit.load(paths, SplitSpec.parse(split), seed, cacheDir);
        }
    }

    /**
     * How long and at what rate a stage trains: batch size, epochs over its rows, an optional cap on optimizer steps
     * (0: none), the learning-rate schedule by transformers' name and its warm-up steps.
     */
    public record Training(int batchSize, int epochs, long maxSteps, String scheduler, int warmupSteps) {
        public Training {
            if (batchSize < 1) throw new IllegalArgumentException("batch size " + batchSize + " must be at least 1");
            if (epochs < 1) throw new IllegalArgumentException("epochs " + epochs + " must be at least 1");
            if (maxSteps < 0) throw new IllegalArgumentException("max steps " + maxSteps + " must be >= 0 (0: no cap)");
            LrSchedule.named(scheduler, 0, 0); // an unknown name fails here
        }

        long steps(int batchesPerEpoch) {
            long all = (long) epochs * batchesPerEpoch;
            return maxSteps > 0 ? Math.min(all, maxSteps) : all;
        }

        LrSchedule schedule(long total) {
            return LrSchedule.named(scheduler, Math.min(warmupSteps, total), total);
        }
    }

    /**
     * Step 1. {@code model}: a Hugging Face model directory (weights and tokenizer), or with {@code fromScratch} one
     * whose config.json is initialised randomly with the seed. The actor goes to {@code out}.
     */
    public record SftSettings(Data data, Path model, boolean fromScratch, int maxSeqLen, Training training, double lr,
                              double weightDecay, Path out, Path metrics) {}

    /** What step 1 reports: eval perplexity, steps, the last training loss. */
    public record SftResult(double perplexity, long steps, double lastLoss, Path actor) {}

    /**
     * Step 2. {@code model}: a causal-LM directory (its base model, a fresh v_head) or a reward-model directory
     * (v_head included).
     */
    public record RewardSettings(Data data, Path model, int maxSeqLen, Training training, double lr,
                                 double weightDecay, Path out, Path metrics) {}

    /** What step 2 reports on its eval split. */
    public record RewardResult(RewardTrainer.Evaluation eval, long steps, double lastLoss, Path rewardModel) {}

    /** Step 3: actor from step 1, critic and reward model from step 2; models to {@code out/{actor,critic,actor_ema}}. */
    public record PpoSettings(Data data, Path actor, Path critic, int maxPromptSeqLen, int maxAnswerSeqLen,
                              Training training, double actorLr, double criticLr, double actorWeightDecay,
                              double criticWeightDecay, int ppoEpochs, boolean enableEma, Path unsupervisedDataset,
                              double unsupCoef, double temperature, double topP, double klCtl, Path out,
                              Path metrics) {
        /** DS-Chat's step-3 defaults around the given paths: lr 9.65e-6 / 5e-6, cosine with 100 warm-up steps, 256 + 256. */
        public static PpoSettings dsChat(Data data, Path actor, Path critic, Path out, Path metrics) {
            return new PpoSettings(data, actor, critic, 256, 256, new Training(16, 1, 0, "cosine", 100), 9.65e-6, 5e-6,
                    0.0, 0.0, 1, false, null, 27.8, 1.0, 1.0, PpoMath.KL_CTL, out, metrics);
        }
    }

    /** What step 3 reports: the last step's losses and where the models went. */
    public record PpoResult(PpoTrainer.Losses last, long steps, Path actor, Path critic, Path actorEma) {}

    // ---- step 1 ----------------------------------------------------------------------------------------------------

    public static SftResult sft(SftSettings s, PrintWriter log) {
        Device dev = Device.cpu();
        DataSplit split = s.data().load();
        try (Tokenizer tok = Tokenizer.load(s.model());
             HfModel hf = s.fromScratch()
                     ? HfModel.random(ConfigJson.read(s.model().resolve("config.json")), dev, DType.F32,
                             s.data().seed(), true)
                     : HfModel.load(s.model(), dev, DType.F32, true)) {
            TextEncoder enc = TextEncoder.dsChat(tok);
            SftSamples train = SftSamples.build(split.pairs(Phase.SFT, DataSplit.Part.TRAIN), enc, s.maxSeqLen());
            SftSamples eval = SftSamples.build(split.pairs(Phase.SFT, DataSplit.Part.EVAL), enc, s.maxSeqLen());
            log.printf("step 1 data: train %s; eval %s%n", train.skips().summary(), eval.skips().summary());
            requireRows("step 1", train.size(), s.data());
            Batches<LmBatch> batches = new Batches<>(train, s.training().batchSize(), true, s.data().seed());
            long steps = s.training().steps(batches.batchesPerEpoch());
            log.printf(Locale.ROOT, "step 1 (sft): %s, %,d parameters, %d samples, %d steps%n", s.model(),
                    hf.parameters().parameterCount(), train.size(), steps);
            double loss = Double.NaN, ppl;
            try (Optimized opt = new Optimized(hf.parameters(), new Optimized.Settings(s.lr(), s.weightDecay(),
                         s.training().schedule(steps), 1.0));
                 MetricsLog metrics = new MetricsLog(s.metrics());
                 Progress bar = Progress.start("step1", steps, log)) {
                SftTrainer trainer = new SftTrainer(hf.model(), opt);
                for (long i = 1; i <= steps; i++) {
                    LmBatch b = batches.next();
                    double lr = opt.lr();
                    long t0 = System.nanoTime();
                    loss = trainer.step(b);
                    double tps = tokens(b.attentionMask()) / ((System.nanoTime() - t0) / 1e9);
                    metrics.log("step", i, "loss", loss, "lr", lr, "tokens_per_s", tps, "elapsed_s", bar.elapsed());
                    bar.step(i, String.format(Locale.ROOT, "loss %.4f lr %.3g %.0f tok/s", loss, lr, tps));
                }
                ppl = eval.size() == 0 ? Double.NaN : trainer.perplexity(eval.inOrder(s.training().batchSize()));
                metrics.log("step", steps, "eval_perplexity", ppl, "eval_samples", eval.size(), "elapsed_s",
                        bar.elapsed());
            }
            log.printf(Locale.ROOT, "step 1 eval: perplexity %.4f on %d samples%n", ppl, eval.size());
            HfModel.save(hf.model(), hf.configJson(), s.out(), s.model(), DType.F32, SHARD);
            log.printf("step 1 saved %s%n", s.out());
            log.flush();
            return new SftResult(ppl, steps, loss, s.out());
        }
    }

    // ---- step 2 ----------------------------------------------------------------------------------------------------

    public static RewardResult reward(RewardSettings s, PrintWriter log) {
        Device dev = Device.cpu();
        DataSplit split = s.data().load();
        ConfigJson json = ConfigJson.read(s.model().resolve("config.json"));
        ModelConfig config = Models.config(json);
        RewardModel rm = RewardModel.of(config);
        try (Tokenizer tok = Tokenizer.load(s.model());
             ParameterStore store = ParameterStore.allocate(rm, dev, DType.F32, s.data().seed(), true)) {
            // a causal-LM directory gives the base model and leaves the v_head as initialised; a reward-model one all
            HfModel.LoadReport loaded = HfModel.loadWeights(rm, config.basePrefix(), s.model(), Set.of("v_head.weight"));
            TextEncoder enc = TextEncoder.dsChat(tok);
            PairSamples train = PairSamples.build(split.pairs(Phase.REWARD, DataSplit.Part.TRAIN), enc, s.maxSeqLen());
            PairSamples eval = PairSamples.build(split.pairs(Phase.REWARD, DataSplit.Part.EVAL), enc, s.maxSeqLen());
            log.printf("step 2 data: train %s; eval %s%n", train.skips().summary(), eval.skips().summary());
            requireRows("step 2", train.size(), s.data());
            Batches<PairBatch> batches = new Batches<>(train, s.training().batchSize(), true, s.data().seed());
            long steps = s.training().steps(batches.batchesPerEpoch());
            log.printf(Locale.ROOT, "step 2 (reward model): %s%s, %,d parameters, %d pairs, %d steps%n", s.model(),
                    loaded.notInCheckpoint().isEmpty() ? "" : " (fresh " + String.join(", ", loaded.notInCheckpoint()) + ")",
                    store.parameterCount(), train.size(), steps);
            double loss = Double.NaN;
            RewardTrainer.Evaluation ev;
            try (Optimized opt = new Optimized(store, new Optimized.Settings(s.lr(), s.weightDecay(),
                         s.training().schedule(steps), 1.0));
                 MetricsLog metrics = new MetricsLog(s.metrics());
                 Progress bar = Progress.start("step2", steps, log)) {
                RewardTrainer trainer = new RewardTrainer(rm, opt, enc.padId(), 0);
                for (long i = 1; i <= steps; i++) {
                    PairBatch b = batches.next();
                    double lr = opt.lr();
                    long t0 = System.nanoTime();
                    loss = trainer.step(b);
                    double tps = tokens(b.attentionMask()) / ((System.nanoTime() - t0) / 1e9);
                    metrics.log("step", i, "loss", loss, "lr", lr, "tokens_per_s", tps, "elapsed_s", bar.elapsed());
                    bar.step(i, String.format(Locale.ROOT, "loss %.4f lr %.3g %.0f tok/s", loss, lr, tps));
                }
                ev = trainer.evaluate(eval.inOrder(s.training().batchSize()));
                metrics.log("step", steps, "eval_accuracy", ev.accuracy(), "eval_chosen_score", ev.chosenScore(),
                        "eval_rejected_score", ev.rejectedScore(), "eval_pairs", ev.pairs(), "elapsed_s", bar.elapsed());
            }
            log.printf(Locale.ROOT, "step 2 eval: accuracy %.4f, chosen score %.4f, rejected score %.4f (%d pairs)%n",
                    ev.accuracy(), ev.chosenScore(), ev.rejectedScore(), ev.pairs());
            HfModel.save(rm, json, s.out(), s.model(), DType.F32, SHARD);
            log.printf("step 2 saved %s%n", s.out());
            log.flush();
            return new RewardResult(ev, steps, loss, s.out());
        }
    }

    // ---- step 3 ----------------------------------------------------------------------------------------------------

    public static PpoResult ppo(PpoSettings s, PrintWriter log) {
        Device dev = Device.cpu();
        DataSplit split = s.data().load();
        ConfigJson actorJson = ConfigJson.read(s.actor().resolve("config.json"));
        ConfigJson criticJson = ConfigJson.read(s.critic().resolve("config.json"));
        ModelConfig actorConfig = Models.config(actorJson), criticConfig = Models.config(criticJson);
        try (Tokenizer tok = Tokenizer.load(s.actor())) {
            TextEncoder enc = TextEncoder.dsChat(tok);
            int pad = enc.padId();
            PromptSamples prompts = PromptSamples.build(split.prompts(Phase.PPO, DataSplit.Part.TRAIN), enc,
                    s.maxPromptSeqLen());
            log.printf("step 3 data: prompts %s%n", prompts.skips().summary());
            requireRows("step 3", prompts.size(), s.data());
            Batches<LmBatch> unsup = null;
            if (s.unsupervisedDataset() != null) {
                TextBlocks blocks = TextBlocks.build(Dataset.load(s.unsupervisedDataset()).texts(), enc,
                        s.maxPromptSeqLen() + s.maxAnswerSeqLen());
                log.printf("step 3 unsupervised data: %d blocks; %s%n", blocks.size(), blocks.skips().summary());
                if (blocks.size() == 0)
                    throw new IllegalArgumentException("unsupervised dataset " + s.unsupervisedDataset()
                            + " gives no block of " + (s.maxPromptSeqLen() + s.maxAnswerSeqLen()) + " tokens");
                unsup = new Batches<>(blocks, s.training().batchSize(), true, s.data().seed());
            }
            Batches<PromptBatch> batches = new Batches<>(prompts, s.training().batchSize(), true, s.data().seed());
            long steps = s.training().steps(batches.batchesPerEpoch());

            CausalLM actor = CausalLM.of(actorConfig), ref = CausalLM.of(actorConfig);
            RewardModel critic = RewardModel.of(criticConfig), reward = RewardModel.of(criticConfig);
            ParameterStore actorStore = ParameterStore.allocate(actor, dev, DType.F32, 0, true);
            ParameterStore refStore = ParameterStore.allocate(ref, dev, DType.F32, 0, false);
            ParameterStore criticStore = ParameterStore.allocate(critic, dev, DType.F32, 0, true);
            ParameterStore rewardStore = ParameterStore.allocate(reward, dev, DType.F32, 0, false);
            HfModel.loadWeights(actor, actorConfig.basePrefix(), s.actor(), Set.of());
            HfModel.loadWeights(ref, actorConfig.basePrefix(), s.actor(), Set.of());
            HfModel.loadWeights(critic, criticConfig.basePrefix(), s.critic(), Set.of());
            HfModel.loadWeights(reward, criticConfig.basePrefix(), s.critic(), Set.of());
            log.printf(Locale.ROOT, "step 3 (ppo): actor %s (%,d parameters), critic %s (%,d), %d prompts, %d steps%n",
                    s.actor(), actorStore.parameterCount(), s.critic(), criticStore.parameterCount(), prompts.size(),
                    steps);
            GenerationConfig gen = new GenerationConfig(s.maxAnswerSeqLen(), true, s.temperature(), 0, s.topP(), 1.0,
                    new int[] {tok.eosId()}, pad, false, s.data().seed());
            PpoConfig ppo = PpoConfig.dsChat(gen).withKlCtl(s.klCtl()).withPpoEpochs(s.ppoEpochs())
                    .withEma(s.enableEma() ? 0.992 : 0.0);
            ppo = new PpoConfig(ppo.klCtl(), ppo.clipRewardValue(), ppo.cliprange(), ppo.cliprangeValue(), ppo.gamma(),
                    ppo.lam(), ppo.ppoEpochs(), gen, s.unsupCoef(), ppo.emaBeta(), ppo.positionsFromMask());
            LrSchedule schedule = s.training().schedule(steps);
            Path actorOut = s.out().resolve("actor"), criticOut = s.out().resolve("critic");
            Path emaOut = s.enableEma() ? s.out().resolve("actor_ema") : null;
            PpoTrainer.Losses last = null;
            try (RlhfEngine engine = new RlhfEngine(actor,
                    new Optimized(actorStore, new Optimized.Settings(s.actorLr(), s.actorWeightDecay(), schedule, 1.0)),
                    ref, refStore, critic,
                    new Optimized(criticStore, new Optimized.Settings(s.criticLr(), s.criticWeightDecay(), schedule, 1.0)),
                    reward, rewardStore, s.enableEma());
                 MetricsLog metrics = new MetricsLog(s.metrics());
                 Progress bar = Progress.start("step3", steps, log)) {
                PpoTrainer trainer = new PpoTrainer(engine, ppo);
                for (long i = 1; i <= steps; i++) {
                    double actorLr = engine.actorOptimizer().lr(), criticLr = engine.criticOptimizer().lr();
                    long t0 = System.nanoTime();
                    double unsupLoss = Double.NaN;
                    int tokens;
                    LmBatch u = unsup != null ? unsup.next() : null;
                    try (Experience exp = trainer.generateExperience(batches.next())) {
                        tokens = tokens(exp.attentionMask().toIntArray());
                        // DS-Chat's loop: per PPO epoch over the (one) minibatch, the PPO step, the mixture step,
                        // then the EMA update
                        for (int e = 0; e < s.ppoEpochs(); e++) {
                            last = trainer.trainRlhf(exp);
                            if (u != null) unsupLoss = trainer.trainUnsupervised(u);
                            trainer.updateEma();
                        }
                    }
                    double tps = tokens / ((System.nanoTime() - t0) / 1e9);
                    metrics.log("step", i, "actor_loss", last.actorLoss(), "critic_loss", last.criticLoss(), "reward",
                            last.averageReward(), "kl", last.kl(), "answer_length", last.answerLength(), "unsup_loss",
                            unsupLoss, "actor_lr", actorLr, "critic_lr", criticLr, "tokens_per_s", tps, "elapsed_s",
                            bar.elapsed());
                    bar.step(i, String.format(Locale.ROOT, "reward %.3f kl %.4f actor %.4f critic %.4f len %.1f %.0f tok/s",
                            last.averageReward(), last.kl(), last.actorLoss(), last.criticLoss(), last.answerLength(), tps));
                }
                HfModel.save(actor, actorJson, actorOut, s.actor(), DType.F32, SHARD);
                HfModel.save(critic, criticJson, criticOut, s.critic(), DType.F32, SHARD);
                if (emaOut != null) {
                    CausalLM ema = CausalLM.of(actorConfig);
                    try (ParameterStore emaStore = ParameterStore.allocate(ema, dev, DType.F32, 0, false)) {
                        emaStore.data().copyFromTensor(engine.actorEma().shadow(), false); // same config, same layout
                        HfModel.save(ema, actorJson, emaOut, s.actor(), DType.F32, SHARD);
                    }
                }
            }
            log.printf("step 3 saved %s%n", s.out());
            log.flush();
            return new PpoResult(last, steps, actorOut, criticOut, emaOut);
        }
    }

    // ---- evaluation on held-out prompts --------------------------------------------------------------------------

    /** Greedy answers to held-out prompts, scored by a reward model and by a checker. */
    public record PromptEvaluation(double reward, double checkerAccuracy, int prompts) {}

    /**
     * Answers {@code prompts} greedily (up to {@code maxAnswer} tokens) with {@code actor} and reports the mean end
     * score of {@code reward} (scored at the positions the answers were generated at) and the fraction of answers
     * {@code checker(promptText, answerText)} accepts (null: NaN).
     */
    public static PromptEvaluation evaluatePrompts(CausalLM actor, RewardModel reward, Tokenizer tok,
                                                   PromptSamples prompts, int maxAnswer, int pad,
                                                   BiPredicate<String, String> checker) {
        actor.train(false);
        reward.train(false);
        int n = 0, right = 0;
        double sum = 0;
        GenerationConfig greedy = GenerationConfig.greedy(maxAnswer, tok.eosId(), pad);
        for (PromptBatch b : prompts.inOrder(64)) {
            int p = b.columns();
            int[][] ragged = new int[b.rows()][];
            for (int i = 0; i < b.rows(); i++) {
                int off = 0;
                while (b.attentionMask()[i * p + off] == 0) off++;
                ragged[i] = Arrays.copyOfRange(b.inputIds(), i * p + off, (i + 1) * p);
            }
            Generator.Result r = new Generator(actor).generate(ragged, greedy, null);
            int cols = r.sequences()[0].length;
            int[] seq = new int[b.rows() * cols];
            for (int i = 0; i < b.rows(); i++) System.arraycopy(r.sequences()[i], 0, seq, i * cols, cols);
            int[] mask = new int[seq.length];
            for (int i = 0; i < seq.length; i++) mask[i] = seq[i] != pad ? 1 : 0;
            try (Autograd.NoGrad ignored = Autograd.noGrad(); Scope s = Scope.open()) {
                Tensor ids = Tensor.ofInts(seq, b.rows(), cols);
                Tensor pos = Tensor.ofInts(Transformer.positionsFromMask(mask, b.rows(), cols), b.rows(), cols);
                for (double x : RewardModelMath.endScores(reward.scores(ids, Tensor.ofInts(mask, b.rows(), cols), pos),
                        ids, pad, r.promptLength()).toDoubleArray()) sum += x;
            }
            for (int i = 0; i < b.rows(); i++) {
                if (checker != null && checker.test(tok.decode(ragged[i], true), tok.decode(r.tokens()[i], true)))
                    right++;
                n++;
            }
        }
        return n == 0 ? new PromptEvaluation(Double.NaN, Double.NaN, 0)
                : new PromptEvaluation(sum / n, checker == null ? Double.NaN : (double) right / n, n);
    }

    /** {@link #evaluatePrompts} on saved models: an actor directory and a reward-model directory. */
    public static PromptEvaluation evaluatePrompts(Path actorDir, Path rewardDir, PromptSamples prompts, int maxAnswer,
                                                   BiPredicate<String, String> checker) {
        Device dev = Device.cpu();
        ModelConfig rc = Models.config(rewardDir);
        RewardModel reward = RewardModel.of(rc);
        try (Tokenizer tok = Tokenizer.load(actorDir);
             HfModel actor = HfModel.load(actorDir, dev, DType.F32, false);
             ParameterStore rs = ParameterStore.allocate(reward, dev, DType.F32, 0, false)) {
            HfModel.loadWeights(reward, rc.basePrefix(), rewardDir, Set.of());
            return evaluatePrompts(actor.model(), reward, tok, prompts, maxAnswer, TextEncoder.dsChat(tok).padId(),
                    checker);
        }
    }

    private static int tokens(int[] mask) {
        int n = 0;
        for (int m : mask) n += m;
        return n;
    }

    private static void requireRows(String step, int n, Data data) {
        if (n == 0)
            throw new IllegalArgumentException(step + " has no usable rows in " + data.paths() + " with --data-split "
                    + data.split() + " (see the data line above)");
    }

    static boolean exists(Path dir) {
        return Files.isRegularFile(dir.resolve("config.json"));
    }
}
