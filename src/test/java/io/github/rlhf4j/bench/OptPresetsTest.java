package io.github.rlhf4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ModelFormatException;
import io.github.rlhf4j.model.OptConfig;
import io.github.rlhf4j.model.RewardModel;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The shipped OPT configs: each parses, and the models built from it (counted from the shapes, no weights allocated)
 * have the parameter counts transformers 5.18 reports for the same config.json: {@code
 * OPTForCausalLM(config).num_parameters()} and {@code OPTModel(config).num_parameters() + word_embed_proj_dim} (DS-Chat's
 * reward model: the base model and a bias-free v_head), built on the meta device. opt-125m's 125,239,296 and
 * opt-1.3b's 1,315,758,080 are also the counts published on the model cards (125M, 1.3B).
 */
class OptPresetsTest {
    @TempDir
    Path tmp;

    @ParameterizedTest
    @CsvSource({
            "tiny,     198528,      198592,      64,   2,  false",
            "opt-125m, 125239296,   125240064,   768,  12, true",
            "opt-350m, 331196416,   331196928,   1024, 24, true",
            "opt-1.3b, 1315758080,  1315760128,  2048, 24, true",
            "opt-2.7b, 2651596800,  2651599360,  2560, 32, true",
            "opt-6.7b, 6658473984,  6658478080,  4096, 32, true",
            "opt-13b,  12853473280, 12853478400, 5120, 40, true",
            "opt-66b,  65719701504, 65719710720, 9216, 64, true"})
    void eachPresetParsesAndHasTransformersParameterCount(String name, long causalLm, long rewardModel, int hidden,
                                                          int layers, boolean hubVocab) {
        OptConfig c = OptPresets.config(name, true);
        assertEquals(hidden, c.hiddenSize());
        assertEquals(layers, c.numHiddenLayers());
        assertEquals(0.0, c.dropout(), "the benchmark runs without dropout");
        if (hubVocab) {
            assertEquals(50272, c.vocabSize());
            assertEquals(2048, c.maxPositionEmbeddings());
            assertEquals(0.1, OptPresets.config(name, false).dropout(), "the hub's configs have dropout 0.1");
        }
        assertEquals(causalLm, CausalLM.of(c).parameterCount(), name + " causal LM");
        assertEquals(rewardModel, RewardModel.of(c).parameterCount(), name + " reward model");
    }

    @Test
    void opt350mIsPostLayerNormWithProjections() {
        OptConfig c = OptPresets.config("opt-350m", true);
        assertFalse(c.doLayerNormBefore());
        assertTrue(c.projects());
        assertEquals(512, c.wordEmbedProjDim());
        assertEquals(4096, c.ffnDim());
        assertEquals(16, c.numAttentionHeads());
    }

    @Test
    void namesAreReadLikeTheHubs() {
        assertEquals("opt-1.3b", OptPresets.canonical("facebook/opt-1.3b"));
        assertEquals("opt-1.3b", OptPresets.canonical("OPT-1.3B"));
        assertEquals("opt-350m", OptPresets.canonical("350m"));
        assertEquals("tiny", OptPresets.canonical("opt-tiny"));
        assertNull(OptPresets.canonical("opt-999m"));
    }

    @Test
    void aConfigFileServesAsAModelAndOtherFamiliesAreRefused() throws Exception {
        Path opt = tmp.resolve("opt.json"), gpt2 = tmp.resolve("gpt2.json");
        Files.writeString(opt, """
                {"model_type": "opt", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 1, "ffn_dim": 64,
                 "max_position_embeddings": 64, "num_attention_heads": 2}""");
        Files.writeString(gpt2, """
                {"model_type": "gpt2", "vocab_size": 100, "n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 64}""");
        assertEquals(32, OptPresets.config(opt.toString(), true).hiddenSize());
        var e = assertThrows(ModelFormatException.class, () -> OptPresets.config(gpt2.toString(), true));
        assertTrue(e.getMessage().contains("model_type") && e.getMessage().contains("OPT"), e.getMessage());
        var missing = assertThrows(IllegalArgumentException.class, () -> OptPresets.json("opt-999m"));
        assertTrue(missing.getMessage().contains("opt-125m"), missing.getMessage());
    }
}
