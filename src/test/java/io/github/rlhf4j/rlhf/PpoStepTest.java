package io.github.rlhf4j.rlhf;

import static io.github.rlhf4j.testing.Assertions.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.data.LmBatch;
import io.github.rlhf4j.data.PairBatch;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.model.ModelConfig;
import io.github.rlhf4j.model.Models;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.model.Safetensors;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.GradClip;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import io.github.rlhf4j.testing.Fixtures;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * The trainers' steps against DeepSpeed-Chat's, run in PyTorch on the same tiny GPT-2 weights and batches
 * (fixtures/ppo_step/, made by src/test/python/make_ppo_step_fixture.py, float64): the PPO step of
 * {@link PpoTrainer} (the experience of {@link PpoTrainer#score}, then {@link PpoTrainer#trainRlhf} twice on it, as
 * {@code --ppo_epochs 2}, with a reference that differs from the actor), one {@link SftTrainer} step and one
 * {@link RewardTrainer} step, each with DS-Chat's AdamW groups, weight decay 0.1, a constant learning rate and
 * gradient clipping at 1.0. The PPO step runs twice: at DS-Chat's literal positions (each model's default, arange(T))
 * and at rlhf4j's default, the positions generation used ({@link PpoConfig#positionsFromMask()}), for which the
 * fixture's PyTorch run passes the same position ids to every model.
 *
 * <p>Two precisions. In float64 everything before the optimizer is checked at rounding level: the experience
 * (actor and reference logprobs, reward scores, values) and the SFT and reward-model losses and gradient norms (seen:
 * 1e-14 and below). The steps themselves run in float32, because AdamW keeps float32 master weights (the native update
 * has no float64 path): there the losses, the gradient norms before clipping and the weights after each step are
 * checked against the float64 reference at float32 tolerances (seen: losses and norms within 1e-6 relative), which
 * still tells a wrong slice, mask, sign, clip or order of operations (errors of order 1e-2 to 1) from rounding.
 *
 * <p>The weights are compared as updates, {@code w_after - w_before}, in units of the learning rate: AdamW moves each
 * weight by about lr per step. Where a gradient element is near AdamW's eps (1e-8) the update is partial and amplifies
 * float32 rounding of the gradient by about |error| / eps; seen: 7e-3 lr at worst, hence the tolerance of 5e-2 lr.
 * Parameters whose gradient is 0 in exact arithmetic are left out (the fixture lists them as {@code zeroGradient}: the
 * attention key biases, and in the reward-model step the final LayerNorm bias, which adds the same constant to every
 * score); AdamW's first step turns the rounding noise there into +-lr in both implementations.
 */
class PpoStepTest {
    static final JsonNode FIXTURE = Fixtures.load("ppo_step/expected.json");
    static final int PAD = FIXTURE.get("padId").asInt(), EOS = FIXTURE.get("eosId").asInt();
    static final double WEIGHT_DECAY = FIXTURE.get("weightDecay").asDouble();
    static final double MAX_GRAD_NORM = FIXTURE.get("maxGradNorm").asDouble();

    /** float64 forward and backward against PyTorch float64. */
    static final double F64_TOL = 1e-12;
    /** float32 losses and gradient norms against PyTorch float64, relative. */
    static final double F32_LOSS_RTOL = 1e-5, F32_NORM_RTOL = 2e-5;
    /** float32 logprobs, scores and values against float64, absolute (they are of order 1 to 10). */
    static final double F32_VALUE_ATOL = 5e-5;
    /** float32 weight updates against float64's, in units of the learning rate (see the class comment). */
    static final double F32_UPDATE_TOL = 5e-2;

    // ---- PPO ------------------------------------------------------------------------------------------------------

    @Test
    void experienceMatchesDeepSpeedChatInFloat64() {
        checkExperienceInFloat64(FIXTURE.get("ppo"), false);
    }

    @Test
    void experienceAtGenerationPositionsMatchesInFloat64() {
        checkExperienceInFloat64(FIXTURE.get("ppoPositionsFromMask"), true);
    }

    @Test
    void twoPpoEpochsMatchDeepSpeedChatTrainRlhf() {
        checkPpoEpochs(FIXTURE.get("ppo"), false, new Snapshot());
    }

    /** rlhf4j's default: every model scores at the positions generation used (the fixture has no weights for it). */
    @Test
    void twoPpoEpochsAtGenerationPositionsMatch() {
        checkPpoEpochs(FIXTURE.get("ppoPositionsFromMask"), true, null);
    }

    @Test
    void fixtureExercisesTheClips() {
        for (String run : new String[] {"ppo", "ppoPositionsFromMask"}) {
            JsonNode epochs = FIXTURE.get(run).get("epochs"), second = epochs.get(1).get("clipped");
            int actions = second.get("actions").asInt();
            int ratios = second.get("ratioAbove").asInt() + second.get("ratioBelow").asInt();
            int values = second.get("valueAbove").asInt() + second.get("valueBelow").asInt();
            assertTrue(ratios > 0 && ratios < actions && values > 0 && values < actions,
                    run + ": the second epoch clips some ratios and values and leaves others: " + second);
            double[] scores = Fixtures.doubles(FIXTURE.get(run).get("rewardScore"));
            assertTrue(Arrays.stream(scores).anyMatch(x -> Math.abs(x) > PpoMath.CLIP_REWARD_VALUE)
                            && Arrays.stream(scores).anyMatch(x -> Math.abs(x) < PpoMath.CLIP_REWARD_VALUE),
                    run + ": some reward scores are clipped to +-5 and some are not");
        }
        boolean clippedNorm = false, unclippedNorm = false;
        for (JsonNode e : FIXTURE.get("ppo").get("epochs"))
            for (String norm : new String[] {"actorGradNorm", "criticGradNorm"}) {
                clippedNorm |= e.get(norm).asDouble() > MAX_GRAD_NORM;
                unclippedNorm |= e.get(norm).asDouble() < MAX_GRAD_NORM;
            }
        assertTrue(clippedNorm && unclippedNorm, "ppo: gradient clipping both acts and does not");
    }

    static void checkExperienceInFloat64(JsonNode ppo, boolean positionsFromMask) {
        try (RlhfEngine engine = engine(DType.F64, ppo); Scope s = Scope.open()) {
            PpoTrainer trainer = new PpoTrainer(engine, ppoConfig(positionsFromMask));
            try (Experience exp = score(trainer, ppo)) {
                checkExperience(exp, ppo, F64_TOL);
            }
        }
    }

    /**
     * trainRlhf twice on the fixture's experience: losses, gradient norms before clipping, the average reward, and
     * (with {@code expected}) the weights after each epoch.
     */
    static void checkPpoEpochs(JsonNode ppo, boolean positionsFromMask, Snapshot expected) {
        try (RlhfEngine engine = engine(DType.F32, ppo); Scope s = Scope.open()) {
            PpoTrainer trainer = new PpoTrainer(engine, ppoConfig(positionsFromMask));
            double[] actor0 = engine.actorOptimizer().store().data().toDoubleArray();
            double[] critic0 = engine.criticOptimizer().store().data().toDoubleArray();
            try (Experience exp = score(trainer, ppo)) {
                checkExperience(exp, ppo, F32_VALUE_ATOL);
                for (JsonNode epoch : ppo.get("epochs")) {
                    int e = epoch.get("epoch").asInt();
                    String where = "ppo epoch " + e + (positionsFromMask ? " (positions from mask)" : "");
                    PpoTrainer.Losses losses = trainer.trainRlhf(exp);
                    assertRelative(epoch.get("actorLoss").asDouble(), losses.actorLoss(), F32_LOSS_RTOL,
                            where + ": actor loss");
                    assertRelative(epoch.get("criticLoss").asDouble(), losses.criticLoss(), F32_LOSS_RTOL,
                            where + ": critic loss");
                    assertRelative(epoch.get("actorGradNorm").asDouble(), losses.actorGradNorm(), F32_NORM_RTOL,
                            where + ": actor gradient norm before clipping");
                    assertRelative(epoch.get("criticGradNorm").asDouble(), losses.criticGradNorm(), F32_NORM_RTOL,
                            where + ": critic gradient norm before clipping");
                    // DS-Chat's main.py averages exp_data["rewards"].mean(): the unclipped reward scores
                    assertEquals(mean(Fixtures.doubles(ppo.get("rewardScore"))), losses.averageReward(),
                            F32_VALUE_ATOL, where + ": average reward");
                    if (expected == null) continue;
                    checkUpdate(engine.actorOptimizer().store(), actor0, expected, "ppo.epoch" + e + ".actor.",
                            ppo.get("actorLr").asDouble(), ppo.get("zeroGradient"), where + " actor");
                    checkUpdate(engine.criticOptimizer().store(), critic0, expected, "ppo.epoch" + e + ".critic.",
                            ppo.get("criticLr").asDouble(), ppo.get("zeroGradient"), where + " critic");
                }
            }
        }
    }

    /** Scores the fixture's sequences, as generateExperience does after generating them. */
    static Experience score(PpoTrainer trainer, JsonNode ppo) {
        int[] shape = Fixtures.shape(ppo.get("seq"));
        return trainer.score(Fixtures.ints(ppo.get("seq")), shape[0], shape[1], ppo.get("promptLength").asInt(), 0);
    }

    /**
     * The experience at the positions whose logits and values come from a real token: a left-padding query sees no
     * key at all, which transformers and rlhf4j fill differently, and no loss reads those positions.
     */
    static void checkExperience(Experience exp, JsonNode ppo, double atol) {
        int[] seq = Fixtures.ints(ppo.get("seq")), mask = Fixtures.ints(ppo.get("attentionMask"));
        int[] shape = Fixtures.shape(ppo.get("seq"));
        int rows = shape[0], columns = shape[1];
        assertEquals(seq.length, exp.seq().numel());
        assertTrue(Arrays.equals(mask, exp.attentionMask().toIntArray()), "attention mask = seq != pad");
        boolean[] real = new boolean[rows * (columns - 1)];
        for (int b = 0; b < rows; b++) {
            int first = 0;
            while (mask[b * columns + first] == 0) first++;
            for (int t = first; t < columns - 1; t++) real[b * (columns - 1) + t] = true;
        }
        assertClose(pick(Fixtures.doubles(ppo.get("logprobs")), real), pick(exp.logprobs().toDoubleArray(), real),
                atol, 0, "experience: actor logprobs");
        assertClose(pick(Fixtures.doubles(ppo.get("refLogprobs")), real), pick(exp.refLogprobs().toDoubleArray(), real),
                atol, 0, "experience: reference logprobs");
        assertClose(pick(Fixtures.doubles(ppo.get("values")), real), pick(exp.values().toDoubleArray(), real), atol, 0,
                "experience: critic values");
        assertClose(Fixtures.doubles(ppo.get("rewardScore")), exp.rewardScore().toDoubleArray(), atol, 0,
                "experience: reward scores (forward_value's chosen_end_scores)");
    }

    // ---- SFT --------------------------------------------------------------------------------------------------------

    static LmBatch sftBatch() {
        JsonNode sft = FIXTURE.get("sft");
        int[] shape = Fixtures.shape(sft.get("inputIds"));
        return new LmBatch(shape[0], shape[1], Fixtures.ints(sft.get("inputIds")),
                Fixtures.ints(sft.get("attentionMask")), Fixtures.ints(sft.get("labels")));
    }

    @Test
    void sftLossAndGradientMatchTransformersInFloat64() {
        JsonNode sft = FIXTURE.get("sft");
        try (Loaded<CausalLM> actor = causalLm("actor", DType.F64, true); Scope s = Scope.open()) {
            actor.model.train(true);
            Tensor loss = SftTrainer.loss(actor.model, sftBatch());
            assertEquals(sft.get("loss").asDouble(), loss.item(), F64_TOL, "sft loss");
            loss.backward();
            assertRelative(sft.get("gradNorm").asDouble(), GradClip.globalNorm(actor.store.grad()), F64_TOL,
                    "sft gradient norm");
        }
    }

    @Test
    void sftStepMatchesDeepSpeedChatStep1() {
        JsonNode sft = FIXTURE.get("sft");
        double lr = sft.get("lr").asDouble();
        try (Loaded<CausalLM> actor = causalLm("actor", DType.F32, true);
             Optimized opt = new Optimized(actor.store, settings(lr))) {
            double[] before = actor.store.data().toDoubleArray();
            double loss = new SftTrainer(actor.model, opt).step(sftBatch());
            assertRelative(sft.get("loss").asDouble(), loss, F32_LOSS_RTOL, "sft loss");
            assertRelative(sft.get("gradNorm").asDouble(), opt.lastGradNorm(), F32_NORM_RTOL, "sft gradient norm");
            checkUpdate(actor.store, before, new Snapshot(), "sft.", lr, sft.get("zeroGradient"), "sft");
        }
    }

    // ---- reward model -------------------------------------------------------------------------------------------------

    static PairBatch pairBatch() {
        JsonNode rm = FIXTURE.get("reward");
        return new PairBatch(rm.get("pairs").asInt(), Fixtures.shape(rm.get("inputIds"))[1],
                Fixtures.ints(rm.get("inputIds")), Fixtures.ints(rm.get("attentionMask")));
    }

    @Test
    void rewardLossAndGradientMatchDeepSpeedChatInFloat64() {
        JsonNode rm = FIXTURE.get("reward");
        PairBatch batch = pairBatch();
        try (Loaded<RewardModel> reward = rewardModel("reward", DType.F64, true); Scope s = Scope.open()) {
            reward.model.train(true);
            // RewardTrainer's forward: the model's per-token scores, then DS-Chat's pairwise loss on them
            Tensor ids = Tensor.ofInts(batch.inputIds(), batch.rows(), batch.columns());
            Tensor scores = reward.model.scores(ids, Tensor.ofInts(batch.attentionMask(), batch.rows(), batch.columns()));
            RewardModelMath.Pairwise p = RewardModelMath.pairwiseLoss(scores, ids, PAD, 0);
            assertEquals(rm.get("loss").asDouble(), p.loss().item(), F64_TOL, "reward loss");
            assertClose(Fixtures.doubles(rm.get("chosenEndScores")), p.chosenEndScores().toDoubleArray(), F64_TOL, 0,
                    "chosen end scores");
            assertClose(Fixtures.doubles(rm.get("rejectedEndScores")), p.rejectedEndScores().toDoubleArray(), F64_TOL,
                    0, "rejected end scores");
            p.loss().backward();
            assertRelative(rm.get("gradNorm").asDouble(), GradClip.globalNorm(reward.store.grad()), F64_TOL,
                    "reward gradient norm");
        }
    }

    @Test
    void rewardStepMatchesDeepSpeedChatStep2() {
        JsonNode rm = FIXTURE.get("reward");
        double lr = rm.get("lr").asDouble();
        try (Loaded<RewardModel> reward = rewardModel("reward", DType.F32, true);
             Optimized opt = new Optimized(reward.store, settings(lr))) {
            RewardTrainer trainer = new RewardTrainer(reward.model, opt, PAD, 0);
            double[] chosen = Fixtures.doubles(rm.get("chosenEndScores"));
            double[] rejected = Fixtures.doubles(rm.get("rejectedEndScores"));
            RewardTrainer.Evaluation eval = trainer.evaluate(List.of(pairBatch()));
            int correct = 0;
            for (int i = 0; i < chosen.length; i++) if (chosen[i] > rejected[i]) correct++;
            assertEquals((double) correct / chosen.length, eval.accuracy(), "accuracy before the step");
            assertEquals(mean(chosen), eval.chosenScore(), F32_VALUE_ATOL, "mean chosen end score");
            assertEquals(mean(rejected), eval.rejectedScore(), F32_VALUE_ATOL, "mean rejected end score");

            double[] before = reward.store.data().toDoubleArray();
            double loss = trainer.step(pairBatch());
            assertRelative(rm.get("loss").asDouble(), loss, F32_LOSS_RTOL, "reward loss");
            assertRelative(rm.get("gradNorm").asDouble(), opt.lastGradNorm(), F32_NORM_RTOL, "reward gradient norm");
            checkUpdate(reward.store, before, new Snapshot(), "reward.", lr, rm.get("zeroGradient"), "reward step");
        }
    }

    // ---- models and settings -----------------------------------------------------------------------------------------

    static PpoConfig ppoConfig(boolean positionsFromMask) {
        return PpoConfig.dsChat(GenerationConfig.greedy(6, EOS, PAD)).withPpoEpochs(2)
                .withPositionsFromMask(positionsFromMask);
    }

    static Optimized.Settings settings(double lr) {
        return new Optimized.Settings(lr, WEIGHT_DECAY, LrSchedule.constant(0), MAX_GRAD_NORM);
    }

    /** A model and its parameter store, closed together. */
    record Loaded<M extends Module>(M model, ParameterStore store) implements AutoCloseable {
        @Override
        public void close() {
            store.close();
        }
    }

    static Path dir(String name) {
        URL url = PpoStepTest.class.getResource("/fixtures/ppo_step/" + name + "/config.json");
        if (url == null) throw new IllegalStateException("missing test fixture /fixtures/ppo_step/" + name);
        try {
            return Path.of(url.toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static Loaded<CausalLM> causalLm(String name, DType dtype, boolean trainable) {
        return load(name, dtype, trainable, CausalLM::of);
    }

    static Loaded<RewardModel> rewardModel(String name, DType dtype, boolean trainable) {
        return load(name, dtype, trainable, RewardModel::of);
    }

    static <M extends Module> Loaded<M> load(String name, DType dtype, boolean trainable,
                                             Function<ModelConfig, M> make) {
        Path dir = dir(name);
        ModelConfig config = Models.config(dir);
        M model = make.apply(config);
        ParameterStore store = ParameterStore.allocate(model, Device.cpu(), dtype, 0, trainable);
        HfModel.loadWeights(model, config.basePrefix(), dir, Set.of());
        return new Loaded<>(model, store);
    }

    static RlhfEngine engine(DType dtype, JsonNode ppo) {
        Loaded<CausalLM> actor = causalLm("actor", dtype, true), reference = causalLm("reference", dtype, false);
        Loaded<RewardModel> critic = rewardModel("critic", dtype, true), reward = rewardModel("reward", dtype, false);
        return new RlhfEngine(actor.model, new Optimized(actor.store, settings(ppo.get("actorLr").asDouble())),
                reference.model, reference.store,
                critic.model, new Optimized(critic.store, settings(ppo.get("criticLr").asDouble())),
                reward.model, reward.store, false);
    }

    // ---- comparing weights ---------------------------------------------------------------------------------------------

    /** fixtures/ppo_step/updated.safetensors: the weights after each step, float64. */
    static final class Snapshot {
        final Path file = dir("actor").getParent().resolve("updated.safetensors");

        double[] read(String name, int[] shape) {
            try (Safetensors st = Safetensors.open(file); Scope s = Scope.open()) {
                if (!st.entries().containsKey(name)) fail(file + " has no tensor " + name);
                Tensor t = s.zeros(DType.F64, shape);
                st.read(name, t);
                return t.toDoubleArray();
            }
        }
    }

    /**
     * Every parameter's update since {@code before} against PyTorch's (the fixture's weights minus the initial ones)
     * to {@link #F32_UPDATE_TOL} lr, except the slices listed in {@code zeroGradient}: parameters whose gradient is 0
     * in exact arithmetic (the fixture's generator checks that it is of rounding size there), which AdamW's
     * normalisation turns into noise of size lr. The store's entries name the parameters as the fixture does.
     */
    static void checkUpdate(ParameterStore store, double[] before, Snapshot expected, String prefix, double lr,
                            JsonNode zeroGradient, String where) {
        double[] now = store.data().toDoubleArray();
        double worst = 0;
        String worstAt = null;
        int compared = 0, skipped = 0;
        for (ParameterStore.Entry e : store.entries()) {
            double[] want = expected.read(prefix + e.name(), e.parameter().shape());
            boolean[] skip = new boolean[(int) e.numel()];
            for (JsonNode z : zeroGradient)
                if (e.name().endsWith(z.get("tensorSuffix").asText()))
                    for (int i = z.get("from").asInt(); i < z.get("to").asInt(); i++) skip[i] = true;
            for (int i = 0; i < e.numel(); i++) {
                if (skip[i]) {
                    skipped++;
                    continue;
                }
                int at = (int) e.offset() + i;
                double err = Math.abs((now[at] - before[at]) - (want[i] - before[at])) / lr;
                compared++;
                if (!(err <= worst)) {
                    worst = err;
                    worstAt = e.name() + "[" + i + "]: update " + (now[at] - before[at]) + ", expected "
                            + (want[i] - before[at]);
                }
            }
        }
        assertTrue(compared > 0 && skipped < compared / 10, where + ": " + compared + " weights compared, " + skipped
                + " left out");
        if (!(worst <= F32_UPDATE_TOL))
            fail(String.format("%s: weight update differs by %.3g lr (> %.1g lr) at %s", where, worst, F32_UPDATE_TOL,
                    worstAt));
    }

    // ---- small helpers -----------------------------------------------------------------------------------------------

    static void assertRelative(double expected, double actual, double rtol, String what) {
        double err = Math.abs(actual - expected) / Math.abs(expected);
        if (!(err <= rtol))
            fail(String.format("%s: %.17g, expected %.17g (relative error %.3g > %.1g)", what, actual, expected, err,
                    rtol));
    }

    static double[] pick(double[] v, boolean[] keep) {
        return IntStream.range(0, v.length).filter(i -> keep[i]).mapToDouble(i -> v[i]).toArray();
    }

    static double mean(double[] v) {
        double s = 0;
        for (double x : v) s += x;
        return s / v.length;
    }
}
