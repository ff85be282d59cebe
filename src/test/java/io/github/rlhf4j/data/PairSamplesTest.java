package io.github.rlhf4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;

/** Step-2 batches against DeepSpeed-Chat's create_dataset_split(train_phase=2) + DataCollatorReward. */
class PairSamplesTest {
    static final List<String> TOKENIZERS = SampleFixtures.TOKENIZERS;

    @ParameterizedTest
    @FieldSource("TOKENIZERS")
    void batchIsAllChosenThenAllRejectedAsDeepSpeedChatStacksThem(String name) {
        JsonNode want = SampleFixtures.of(name).get("reward");
        PairSamples s = PairSamples.build(SampleFixtures.pairs(), SampleFixtures.encoder(name),
                SampleFixtures.maxSeqLen());
        PairBatch b = s.batch(DataFixtures.range(s.size()));
        assertEquals(2 * s.size(), b.rows());
        assertEquals(want.get("input_ids").size(), b.rows());
        assertArrayEquals(DataFixtures.flat(want.get("input_ids")), b.inputIds(), name + ": input_ids");
        assertArrayEquals(DataFixtures.flat(want.get("attention_mask")), b.attentionMask(), name + ": attention_mask");
    }
}
