package io.github.rlhf4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;

/** Step-3 prompts against DeepSpeed-Chat's create_dataset_split(train_phase=3) + DataCollatorRLHF. */
class PromptSamplesTest {
    static final List<String> TOKENIZERS = SampleFixtures.TOKENIZERS;

    @ParameterizedTest
    @FieldSource("TOKENIZERS")
    void longPromptsAreDroppedAndTheRestLeftPadded(String name) {
        JsonNode want = SampleFixtures.of(name).get("ppo");
        Rows<PromptRow> rows = SampleFixtures.prompts();
        PromptSamples s = PromptSamples.build(rows, SampleFixtures.encoder(name), SampleFixtures.maxPromptSeqLen());
        int filtered = want.get("filtered").asInt();
        assertTrue(filtered > 0, "the fixture drops some prompts");
        assertEquals(rows.size() - filtered, s.size());
        assertEquals(filtered, s.skips().count(SkipReason.PROMPT_TOO_LONG));
        assertEquals(rows.size(), s.skips().rows());
        // The dropped ones are the rows the fixture did not keep, named by position.
        List<Integer> kept = java.util.Arrays.stream(DataFixtures.ints(want.get("kept_rows"))).boxed().toList();
        int next = 0;
        for (int i = 0; i < rows.size() && next < s.skips().examples().size(); i++)
            if (!kept.contains(i)) assertEquals(rows.position(i), s.skips().examples().get(next++).position());
        PromptBatch b = s.batch(DataFixtures.range(s.size()));
        assertEquals(SampleFixtures.maxPromptSeqLen(), b.columns());
        assertArrayEquals(DataFixtures.flat(want.get("prompt")), b.inputIds(), name + ": prompt");
        assertArrayEquals(DataFixtures.flat(want.get("prompt_att_mask")), b.attentionMask(), name + ": prompt_att_mask");
    }

    @ParameterizedTest
    @FieldSource("TOKENIZERS")
    void blendedDatasetsDropLongPromptsBeforeTheReshuffle(String name) {
        JsonNode want = SampleFixtures.of(name).get("ppo_blend");
        DataSplit split = DataSplit.of(List.of(Dataset.load(DataFixtures.file("rm-static.jsonl")),
                        Dataset.load(DataFixtures.file("prompts.jsonl"))), SplitSpec.parse(want.get("split").asText()),
                want.get("seed").asLong(), null);
        PromptSamples s = PromptSamples.build(split.prompts(Phase.PPO, DataSplit.Part.TRAIN),
                SampleFixtures.encoder(name), SampleFixtures.maxPromptSeqLen());
        JsonNode prompts = want.get("prompts");
        assertEquals(prompts.size(), s.size());
        for (int i = 0; i < s.size(); i++)
            assertArrayEquals(DataFixtures.ints(prompts.get(i)), s.tokens(i), name + ": blended prompt " + i);
    }
}
