package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.data.DataSplit;
import io.github.rlhf4j.data.LmBatch;
import io.github.rlhf4j.data.PairBatch;
import io.github.rlhf4j.data.PairSamples;
import io.github.rlhf4j.data.Phase;
import io.github.rlhf4j.data.PromptBatch;
import io.github.rlhf4j.data.PromptSamples;
import io.github.rlhf4j.data.Batches;
import io.github.rlhf4j.data.SftSamples;
import io.github.rlhf4j.data.SplitSpec;
import io.github.rlhf4j.data.TextEncoder;
import io.github.rlhf4j.data.Tokenizer;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.generate.Generator;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.model.Models;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

/**
 * An experiment harness, not a test: the three stages end to end on {@link DemoTask}, with every setting on the
 * command line, for tuning the embedded demo of {@code bin/rlhf4j train} (issue 6). Run from the test classpath:
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -cp target/test-classes:target/classes:target/lib/'*' \
 *     io.github.rlhf4j.rlhf.DemoExperiment ROWS SFT_STEPS SFT_LR RM_STEPS RM_LR PPO_STEPS ACTOR_LR CRITIC_LR BATCH \
 *     TEMPERATURE KL_CTL N_EMBD N_LAYER N_HEAD SEED OUT_DIR
 * </pre>
 *
 * Findings so far (2 cores, about 0.1M-parameter GPT-2s, 6-8k rows): SFT alone reaches 100% at 700 steps (lr 2e-3)
 * and about 25% at 400; the reward model reaches 86-90% pairwise accuracy; PPO at actor lr 5e-5 for 200 steps
 * raised the reward model's score on held-out prompts (4.19 -> 4.83) but not the checker (0.28 -> 0.24); at lr 3e-4
 * the actor hacked the reward model with 10-token answers (checker 0). With run-on and unrelated-letter negatives
 * added to the pairs the reward model reached 96% (8000 rows, 1500 steps), SFT at 450 steps 60%, but PPO (actor lr
 * 1e-4, critic 2e-4, 300 steps) still raised the reward (4.71 -> 5.21) while the checker fell to 18%, with shorter
 * answers: the reward model can still be won over off its training distribution. The tokenizer now has its own
 * {@code <pad>} (with pad = end-of-text, as GPT-2's, the end-of-text action is masked out of both PPO losses and
 * stopping is never trained); with it: reward model 92.5%, SFT 24%, PPO reward 2.98 -> 3.63 but checker 24% -> 13%.
 * With {@code ONPOLICY=1} in the environment the reward pairs' rejected answers are the SFT actor's own wrong samples
 * (temperature 1: 2684 of 2880 were wrong): reward model 91%, PPO (lr 5e-5, 200 steps) reward -0.39 -> 0.34, checker
 * 24% -> 15%. Next to try: sampling PPO answers at a lower temperature (93% of temperature-1 samples are wrong, so the
 * advantages carry little signal), a reward model larger than the actor, early stopping on a held-out reward.
 * With {@code SPLIT=1,6,3} (900 SFT rows, 5400 reward pairs, 3000 reward steps, on-policy negatives) the reward model
 * reached 96.5-97% and PPO at temperature 0.7 was stable: with SFT at 100% (600 steps) it stayed at 100%; with SFT at
 * 36% (400 steps), lr 3e-5 kept 34-36% while the reward rose (-1.98 -> -1.28), lr 1.5e-4 gave 29-34% (reward -0.40).
 * PPO has not yet improved the checker in any setting tried. Scoring at the generation positions
 * ({@link PpoConfig#positionsFromMask()}) was needed: without it the KL estimate swung between -9 and +4.
 *
 * <p>What worked (issue 6): noisy demonstrations, reliable comparisons ({@code DEMO_CORRECT=0.55}: step 1's chosen
 * answers right 55% of the time, see {@link DemoTask#writeData}), and the checker measured on sampled answers
 * (temperature 1, four per held-out prompt; the greedy answers stay 88-96% right, the SFT mode being the right
 * answer). 6000 rows, SFT 700 steps at 2e-3, reward model 1000 at 5e-4, PPO 200 at actor 5e-5 / critic 1e-4, kl 0.1,
 * sampled checker SFT -> PPO: with the generator's negatives only, seed 1234 0.30 -> 0.43, seed 1 0.16 -> 0.22, seed
 * 2 0.24 -> 0.12 (reward 0.05 -> 3.72: exploited; the reward model scores one-letter substitutions high); seed 2 at kl
 * 0.5 0.24 -> 0.28; {@code DEMO_CORRECT=0.8}, seed 2: 0.46 -> 0.50. With {@code ONPOLICY=1} as well (the reward
 * pairs' rejected answers the SFT actor's own mistakes): seed 1234 0.30 -> 0.47, seed 1 0.16 -> 0.25, seed 2 0.24
 * -> 0.43, the greedy answers unharmed (0.93-0.96 after PPO on seeds 1234 and 2): the embedded demo's defaults.
 * Through {@code train} itself (other shuffles) the same settings gave seed 1234 0.28 -> 0.42, seed 1 0.16 -> 0.21,
 * seed 2 0.23 -> 0.19 (KL above 3, the training reward falling); seed 2 with kl 0.3: 0.23 -> 0.25, with actor lr
 * 3e-5 and kl 0.2: 0.23 -> 0.25. With kl 0.3 (the demo's default now): seed 1234 0.28 -> 0.44, seed 1 0.16 ->
 * 0.22, seed 2 0.23 -> 0.25. Seed 2's gain is small: a more stable step 3 is the next thing to try.
 */
public final class DemoExperiment {
    public record Settings(int rows, int sftSteps, double sftLr, int rmSteps, double rmLr, int ppoSteps,
                           double actorLr, double criticLr, int batch, double temperature, double klCtl, int nEmbd,
                           int nLayer, int nHead, long seed) {}

    public record Summary(double rmAccuracy, double sftReward, double ppoReward, double sftChecker, double ppoChecker) {}

    static final int[] DUMP = {0};

    public static void main(String[] args) {
        Settings s = new Settings(Integer.parseInt(args[0]), Integer.parseInt(args[1]), Double.parseDouble(args[2]),
                Integer.parseInt(args[3]), Double.parseDouble(args[4]), Integer.parseInt(args[5]),
                Double.parseDouble(args[6]), Double.parseDouble(args[7]), Integer.parseInt(args[8]),
                Double.parseDouble(args[9]), Double.parseDouble(args[10]), Integer.parseInt(args[11]),
                Integer.parseInt(args[12]), Integer.parseInt(args[13]), Long.parseLong(args[14]));
        System.out.println(run(Path.of(args[15]), s, System.out));
    }

    public static Summary run(Path out, Settings s, PrintStream log) {
        long t0 = System.nanoTime();
        Device dev = Device.cpu();
        Path data = out.resolve("demo-data/reverse.jsonl");
        DemoTask.writeData(data, s.rows(), s.seed(), System.getenv().getOrDefault("SPLIT", "2,4,4"),
                Double.parseDouble(System.getenv().getOrDefault("DEMO_CORRECT", "1")));
        Path tokDir = out.resolve("demo-data/tokenizer");
        DemoTask.writeTokenizer(tokDir);
        ConfigJson cfg = DemoTask.modelConfig(s.nEmbd(), s.nLayer(), s.nHead());
        try (Tokenizer tok = Tokenizer.load(tokDir)) {
            TextEncoder enc = TextEncoder.dsChat(tok).withPadId(tok.padId());
            DataSplit split = DataSplit.load(List.of(data), SplitSpec.parse(System.getenv().getOrDefault("SPLIT", "2,4,4")), s.seed(), out.resolve("demo-data/cache"));
            SftSamples sft = SftSamples.build(split.pairs(Phase.SFT, DataSplit.Part.TRAIN), enc, 24);
            var rewardRows = split.pairs(Phase.REWARD, DataSplit.Part.TRAIN);
            PairSamples pairs = PairSamples.build(rewardRows, enc, 24);
            PairSamples pairsEval = PairSamples.build(split.pairs(Phase.REWARD, DataSplit.Part.EVAL), enc, 24);
            PromptSamples prompts = PromptSamples.build(split.prompts(Phase.PPO, DataSplit.Part.TRAIN), enc, 12);
            PromptSamples held = PromptSamples.build(split.prompts(Phase.PPO, DataSplit.Part.EVAL), enc, 12);
            int pad = enc.padId();
            log.printf("data: sft %d, rm %d (+%d eval), ppo prompts %d (+%d held out)%n", sft.size(), pairs.size(),
                    pairsEval.size(), prompts.size(), held.size());

            // step 1: SFT from scratch
            CausalLM actor = CausalLM.of(Models.config(cfg));
            ParameterStore actorStore = ParameterStore.allocate(actor, dev, DType.F32, s.seed(), true);
            Optimized actorOpt = new Optimized(actorStore, new Optimized.Settings(s.sftLr(), 0.0,
                    LrSchedule.cosine(s.sftSteps() / 10, s.sftSteps()), 1.0));
            SftTrainer sftTrainer = new SftTrainer(actor, actorOpt);
            Batches<LmBatch> sb = new Batches<>(sft, s.batch(), true, s.seed());
            double loss = 0;
            for (int i = 0; i < s.sftSteps(); i++) {
                loss = sftTrainer.step(sb.next());
                if ((i + 1) % 100 == 0) log.printf("sft step %d loss %.3f%n", i + 1, loss);
            }
            actorOpt.close();
            Path actorDir = out.resolve("actor-models/demo");
            HfModel.save(actor, cfg, actorDir, tokDir, DType.F32, 5L << 30);
            log.printf("step 1 done %.1f s%n", (System.nanoTime() - t0) / 1e9);

            // on-policy negatives (ONPOLICY=1): the SFT actor's own wrong answers to the reward-phase prompts
            if ("1".equals(System.getenv("ONPOLICY"))) {
                java.util.List<io.github.rlhf4j.data.PreferenceRow> mixed = new java.util.ArrayList<>();
                java.util.List<io.github.rlhf4j.data.RowPosition> where = new java.util.ArrayList<>();
                GenerationConfig sample = new GenerationConfig(10, true, 1.0, 0, 1.0, 1.0, new int[] {tok.eosId()}, pad,
                        false, s.seed() + 7);
                actor.train(false);
                int own = 0;
                for (int i0 = 0; i0 < rewardRows.size(); i0 += 64) {
                    int n = Math.min(64, rewardRows.size() - i0);
                    int[][] ps = new int[n][];
                    for (int i = 0; i < n; i++) ps[i] = tok.encode(rewardRows.get(i0 + i).prompt(), false);
                    var r = new Generator(actor).generate(ps, sample, null);
                    for (int i = 0; i < n; i++) {
                        var row = rewardRows.get(i0 + i);
                        String ans = tok.decode(r.tokens()[i], true);
                        boolean wrong = !DemoTask.check(row.prompt(), ans) && !ans.isBlank();
                        if (wrong) own++;
                        mixed.add(wrong ? new io.github.rlhf4j.data.PreferenceRow(row.prompt(), row.chosen(), ans) : row);
                        where.add(io.github.rlhf4j.data.RowPosition.line(data, i0 + i + 1));
                    }
                }
                log.printf("reward pairs: %d of %d rejected answers are the SFT actor's own wrong samples%n", own,
                        rewardRows.size());
                pairs = PairSamples.build(io.github.rlhf4j.data.Rows.of(mixed, where), enc, 24);
            }

            // step 2: reward model from the SFT weights + a fresh v_head
            RewardModel rm = RewardModel.of(Models.config(cfg));
            ParameterStore rmStore = ParameterStore.allocate(rm, dev, DType.F32, s.seed() + 1, true);
            HfModel.loadWeights(rm, "transformer", actorDir, Set.of("v_head.weight"));
            Optimized rmOpt = new Optimized(rmStore, new Optimized.Settings(s.rmLr(), 0.0,
                    LrSchedule.cosine(s.rmSteps() / 10, s.rmSteps()), 1.0));
            RewardTrainer rmTrainer = new RewardTrainer(rm, rmOpt, pad, 0);
            Batches<PairBatch> pb = new Batches<>(pairs, s.batch(), true, s.seed());
            for (int i = 0; i < s.rmSteps(); i++) {
                loss = rmTrainer.step(pb.next());
                if ((i + 1) % 100 == 0) log.printf("rm step %d loss %.3f%n", i + 1, loss);
            }
            var ev = rmTrainer.evaluate(pairsEval.inOrder(64));
            log.printf("rm eval: accuracy %.3f chosen %.3f rejected %.3f (%d pairs)%n", ev.accuracy(), ev.chosenScore(),
                    ev.rejectedScore(), ev.pairs());
            rmOpt.close();
            Path rmDir = out.resolve("reward-models/demo");
            HfModel.save(rm, cfg, rmDir, tokDir, DType.F32, 5L << 30);
            rmStore.close();
            log.printf("step 2 done %.1f s%n", (System.nanoTime() - t0) / 1e9);

            // step 3: PPO
            CausalLM ref = CausalLM.of(Models.config(cfg));
            ParameterStore refStore = ParameterStore.allocate(ref, dev, DType.F32, 0, false);
            HfModel.loadWeights(ref, "transformer", actorDir, Set.of());
            RewardModel critic = RewardModel.of(Models.config(cfg)), reward = RewardModel.of(Models.config(cfg));
            ParameterStore criticStore = ParameterStore.allocate(critic, dev, DType.F32, 0, true);
            ParameterStore rewardStore = ParameterStore.allocate(reward, dev, DType.F32, 0, false);
            HfModel.loadWeights(critic, "transformer", rmDir, Set.of());
            HfModel.loadWeights(reward, "transformer", rmDir, Set.of());
            GenerationConfig gen = new GenerationConfig(10, true, s.temperature(), 0, 1.0, 1.0, new int[] {tok.eosId()},
                    pad, false, s.seed());
            PpoConfig ppo = PpoConfig.dsChat(gen).withKlCtl(s.klCtl());
            try (RlhfEngine engine = new RlhfEngine(actor,
                    new Optimized(actorStore, new Optimized.Settings(s.actorLr(), 0.0, LrSchedule.constant(10), 1.0)),
                    ref, refStore, critic,
                    new Optimized(criticStore, new Optimized.Settings(s.criticLr(), 0.0, LrSchedule.constant(10), 1.0)),
                    reward, rewardStore, false)) {
                PpoTrainer trainer = new PpoTrainer(engine, ppo);
                double[] before = evaluate(actor, reward, tok, held, pad);
                double[] beforeS = sampled(actor, reward, tok, held, pad, s.seed());
                log.printf("sft actor on held-out prompts: reward %.3f checker %.3f; sampled: reward %.3f checker %.3f%n",
                        before[0], before[1], beforeS[0], beforeS[1]);
                Batches<PromptBatch> prb = new Batches<>(prompts, s.batch(), true, s.seed());
                for (int i = 0; i < s.ppoSteps(); i++) {
                    try (Experience exp = trainer.generateExperience(prb.next())) {
                        var l = trainer.trainRlhf(exp);
                        if ((i + 1) % 20 == 0)
                            log.printf("ppo step %d actor %.4f critic %.4f reward %.3f kl %.4f len %.1f%n", i + 1,
                                    l.actorLoss(), l.criticLoss(), l.averageReward(), l.kl(), l.answerLength());
                        if ((i + 1) % 50 == 0) {
                            double[] mid = evaluate(actor, reward, tok, held, pad);
                            double[] midS = sampled(actor, reward, tok, held, pad, s.seed());
                            log.printf("  held-out after %d ppo steps: reward %.3f checker %.3f; sampled %.3f %.3f%n",
                                    i + 1, mid[0], mid[1], midS[0], midS[1]);
                        }
                    }
                }
                double[] after = evaluate(actor, reward, tok, held, pad);
                DUMP[0] = 25;
                double[] afterS = sampled(actor, reward, tok, held, pad, s.seed());
                log.printf("ppo actor on held-out prompts: reward %.3f checker %.3f; sampled: reward %.3f checker %.3f"
                        + " (%.1f s)%n", after[0], after[1], afterS[0], afterS[1], (System.nanoTime() - t0) / 1e9);
                return new Summary(ev.accuracy(), beforeS[0], afterS[0], beforeS[1], afterS[1]);
            }
        }
    }

    /** Greedy answers to the held-out prompts: mean reward score and the checker's accuracy. */
    static double[] evaluate(CausalLM actor, RewardModel reward, Tokenizer tok, PromptSamples held, int pad) {
        return evaluate(actor, reward, tok, held, pad, GenerationConfig.greedy(10, tok.eosId(), pad));
    }

    /** Four temperature-1 samples per held-out prompt: mean reward score and the checker's accuracy. */
    static double[] sampled(CausalLM actor, RewardModel reward, Tokenizer tok, PromptSamples held, int pad, long seed) {
        double[] sum = new double[2];
        for (int k = 0; k < 4; k++) {
            double[] e = evaluate(actor, reward, tok, held, pad,
                    GenerationConfig.sampling(10, 1.0, 0, 1.0, tok.eosId(), pad, seed + 100 + k));
            sum[0] += e[0] / 4;
            sum[1] += e[1] / 4;
        }
        return sum;
    }

    static double[] evaluate(CausalLM actor, RewardModel reward, Tokenizer tok, PromptSamples held, int pad,
                             GenerationConfig greedy) {
        actor.train(false);
        reward.train(false);
        int n = 0, right = 0;
        double rsum = 0;
        for (PromptBatch b : held.inOrder(64)) {
            int p = b.columns();
            int[][] ragged = new int[b.rows()][];
            for (int i = 0; i < b.rows(); i++) {
                int off = 0;
                while (b.attentionMask()[i * p + off] == 0) off++;
                ragged[i] = java.util.Arrays.copyOfRange(b.inputIds(), i * p + off, (i + 1) * p);
            }
            var r = new Generator(actor).generate(ragged, greedy, null);
            int cols = r.sequences()[0].length;
            int[] seq = new int[b.rows() * cols];
            for (int i = 0; i < b.rows(); i++) System.arraycopy(r.sequences()[i], 0, seq, i * cols, cols);
            int[] mask = new int[seq.length];
            for (int i = 0; i < seq.length; i++) mask[i] = seq[i] != pad ? 1 : 0;
            try (Autograd.NoGrad ignored = Autograd.noGrad(); Scope s = Scope.open()) {
                Tensor ids = Tensor.ofInts(seq, b.rows(), cols);
                Tensor pos = Tensor.ofInts(io.github.rlhf4j.model.Transformer.positionsFromMask(mask, b.rows(), cols),
                        b.rows(), cols);
                double[] scores = RewardModelMath.endScores(reward.scores(ids, Tensor.ofInts(mask, b.rows(), cols), pos),
                        ids, pad, r.promptLength()).toDoubleArray();
                for (double x : scores) rsum += x;
                if (DUMP[0] > 0)
                    for (int i = 0; i < b.rows() && DUMP[0] > 0; i++) {
                        String prompt = tok.decode(ragged[i], true), answer = tok.decode(r.tokens()[i], true);
                        if (!DemoTask.check(prompt, answer)) {
                            DUMP[0]--;
                            System.out.printf("  wrong: %s ->%s (right%s) score %.2f%n", prompt.strip().replace("\n", " "),
                                    answer, DemoTask.answer(prompt.substring(DemoTask.HUMAN.length(),
                                            prompt.length() - DemoTask.ASSISTANT.length())), scores[i]);
                        }
                    }
            }
            for (int i = 0; i < b.rows(); i++) {
                String prompt = tok.decode(ragged[i], true);
                String answer = tok.decode(r.tokens()[i], true);
                if (DemoTask.check(prompt, answer)) right++;
                n++;
            }
        }
        return new double[] {rsum / n, (double) right / n};
    }
}
