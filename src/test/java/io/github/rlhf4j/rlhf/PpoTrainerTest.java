package io.github.rlhf4j.rlhf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.data.PromptBatch;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.LlamaConfig;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.nn.Parameter;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.Arrays;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@link PpoTrainer#generateExperience}'s bookkeeping, DS-Chat's _generate_sequence / generate_experience: answers of
 * at most one non-pad token are dropped, the kept rows are padded to their longest answer, a batch whose answers are
 * all dropped reuses the last kept sequences (scored again by the current models), and a subclass's
 * {@link PpoTrainer#rewardScores} is what the experience and the step are rewarded with. (The step's numbers are
 * checked against DS-Chat in {@link PpoStepTest}.)
 *
 * <p>The actor is a one-layer Llama whose blocks add nothing (o_proj and down_proj are 0) and whose head reads the
 * current token's one-hot embedding, so greedy decoding follows a fixed table of next tokens, {@link #NEXT}: each
 * prompt's last token decides its answer.
 */
class PpoTrainerTest {
    static final int VOCAB = 8, EOS = 7, PAD = EOS; // pad = eos, as DS-Chat sets GPT-2's tokenizer
    static final int MAX_NEW_TOKENS = 4;
    /** Greedy next token of each token: 1 -> eos; 2 -> 3 -> eos; 4 -> 5 -> 6 -> eos; 0 -> 0 -> 0 ... */
    static final int[] NEXT = {0, EOS, 3, EOS, 5, 6, EOS, EOS};

    /** Answers: [eos] (0 tokens, dropped), [3, eos] (1, dropped), [5, 6, eos] (2, kept), [0, 0, 0, 0] (4, kept). */
    static final PromptBatch MIXED = new PromptBatch(4, 3,
            new int[] {PAD, 5, 1, 6, 4, 2, PAD, PAD, 4, 1, 2, 0},
            new int[] {0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1});
    /** The kept rows of {@link #MIXED}: prompt columns, then the answers padded to the longest (4). */
    static final int[] MIXED_SEQ = {PAD, PAD, 4, 5, 6, EOS, PAD, 1, 2, 0, 0, 0, 0, 0};
    /** Every answer dropped: [eos] and [3, eos]. */
    static final PromptBatch ALL_SHORT = new PromptBatch(2, 3, new int[] {PAD, 5, 1, 6, 4, 2},
            new int[] {0, 1, 1, 1, 1, 1});

    @Test
    void answersOfAtMostOneTokenAreDropped() {
        try (RlhfEngine engine = engine(); Scope s = Scope.open()) {
            try (Experience exp = new PpoTrainer(engine, config()).generateExperience(MIXED)) {
                assertArrayEquals(MIXED_SEQ, exp.seq().toIntArray(), "the kept rows, padded with the pad id");
                assertArrayEquals(new int[] {2, 7}, exp.seq().shape());
                assertEquals(3, exp.promptLength());
                assertEquals(new Experience.Stats(2, 2, 3.0, exp.stats().averageReward()), exp.stats(),
                        "2 rows kept, 2 dropped, answers of 2 and 4 tokens");
                assertArrayEquals(new int[] {0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1}, exp.attentionMask().toIntArray(),
                        "mask = seq != pad: left padding and the eos (= pad) are masked");
                assertArrayEquals(new int[] {2, 6}, exp.logprobs().shape());
                assertArrayEquals(new int[] {2}, exp.rewardScore().shape());
            }
        }
    }

    @Test
    void aBatchWithEveryAnswerDroppedReusesTheLastSequencesScoredAgain() {
        try (RlhfEngine engine = engine(); Scope s = Scope.open()) {
            PpoTrainer trainer = new PpoTrainer(engine, config());
            double[] firstLogprobs;
            try (Experience first = trainer.generateExperience(MIXED)) {
                firstLogprobs = first.logprobs().toDoubleArray();
                trainer.trainRlhf(first); // the actor moves: a reused batch must be scored by the new actor
            }
            try (Experience again = trainer.generateExperience(ALL_SHORT)) {
                assertArrayEquals(MIXED_SEQ, again.seq().toIntArray(), "the last kept sequences");
                assertEquals(3, again.promptLength());
                assertEquals(2, again.stats().rows());
                assertEquals(2, again.stats().dropped(), "this batch's two rows were dropped");
                assertFalse(Arrays.equals(firstLogprobs, again.logprobs().toDoubleArray()),
                        "the reused sequences are scored again with the actor after its step");
            }
        }
    }

    @Test
    void aFirstBatchWithEveryAnswerDroppedFails() {
        try (RlhfEngine engine = engine(); Scope s = Scope.open()) {
            PpoTrainer trainer = new PpoTrainer(engine, config());
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> trainer.generateExperience(ALL_SHORT));
            assertTrue(e.getMessage().contains("no earlier batch"), e.getMessage());
        }
    }

    /** A Java reward instead of the reward model: the number of 0 tokens in the answer. */
    static final class CountZeros extends PpoTrainer {
        CountZeros(RlhfEngine engine, PpoConfig config) {
            super(engine, config);
        }

        @Override
        protected Tensor rewardScores(Tensor seq, Tensor attentionMask, int promptLength) {
            int rows = seq.size(0), columns = seq.size(1);
            int[] ids = seq.toIntArray();
            double[] out = new double[rows];
            for (int i = 0; i < rows; i++)
                for (int t = promptLength; t < columns; t++) if (ids[i * columns + t] == 0) out[i]++;
            return Tensor.of(out, rows);
        }
    }

    @Test
    void aSubclassRewardsWithItsOwnFunction() {
        try (RlhfEngine engine = engine(); Scope s = Scope.open()) {
            PpoTrainer trainer = new CountZeros(engine, config());
            try (Experience exp = trainer.generateExperience(MIXED)) {
                // answers [5, 6, eos, pad] and [0, 0, 0, 0]
                assertArrayEquals(new double[] {0, 4}, exp.rewardScore().toDoubleArray());
                assertEquals(2.0, exp.stats().averageReward());
                PpoTrainer.Losses losses = trainer.trainRlhf(exp);
                assertEquals(2.0, losses.averageReward(), "the step reports the subclass's rewards");
                assertEquals(3.0, losses.answerLength());
            }
            try (Experience byModel = new PpoTrainer(engine, config()).generateExperience(MIXED)) {
                assertFalse(Arrays.equals(new double[] {0, 4}, byModel.rewardScore().toDoubleArray()),
                        "the default trainer rewards with the reward model instead");
            }
        }
    }

    // ---- the models ---------------------------------------------------------------------------------------------------

    static PpoConfig config() {
        return PpoConfig.dsChat(GenerationConfig.greedy(MAX_NEW_TOKENS, EOS, PAD));
    }

    static LlamaConfig llama() {
        return LlamaConfig.tiny(VOCAB, 16, VOCAB, 8, 1, 1, 1);
    }

    /** The table-following actor (see the class comment). */
    static CausalLM tableModel(ParameterStore[] store, boolean trainable) {
        CausalLM m = CausalLM.of(llama());
        store[0] = ParameterStore.allocate(m, Device.cpu(), DType.F32, 1, trainable);
        float[] embed = new float[VOCAB * VOCAB], head = new float[VOCAB * VOCAB];
        for (int t = 0; t < VOCAB; t++) {
            embed[t * VOCAB + t] = 4;             // one-hot rows; RMSNorm keeps them one-hot
            head[NEXT[t] * VOCAB + t] = 2;        // logits[v] = 2 sqrt(8) for the next token, 0 for the others:
                                                  // greedy follows NEXT, and the gradients are not negligible
        }
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (Map.Entry<String, Parameter> e : m.namedParameters().entrySet()) {
                Tensor v = e.getValue().value();
                if (e.getKey().endsWith("o_proj.weight") || e.getKey().endsWith("down_proj.weight")) v.fill(0);
                else if (e.getKey().equals("model.embed_tokens.weight")) v.copyFrom(embed);
                else if (e.getKey().equals("lm_head.weight")) v.copyFrom(head);
            }
        }
        return m;
    }

    static RlhfEngine engine() {
        ParameterStore[] actor = new ParameterStore[1], reference = new ParameterStore[1];
        CausalLM a = tableModel(actor, true), r = tableModel(reference, false);
        RewardModel critic = RewardModel.of(llama()), reward = RewardModel.of(llama());
        ParameterStore cs = ParameterStore.allocate(critic, Device.cpu(), DType.F32, 2, true);
        ParameterStore rs = ParameterStore.allocate(reward, Device.cpu(), DType.F32, 3, false);
        Optimized.Settings settings = new Optimized.Settings(1e-3, 0.0, LrSchedule.constant(0), 1.0);
        return new RlhfEngine(a, new Optimized(actor[0], settings), r, reference[0], critic,
                new Optimized(cs, settings), reward, rs, false);
    }
}
