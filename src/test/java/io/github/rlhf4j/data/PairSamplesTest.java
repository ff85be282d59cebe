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

    /**
     * DeepSpeed-Chat's num_padding_at_beginning: OPT's tokenizer starts every text with its BOS {@code </s>}, the
     * pad id once pad = EOS, so the reward loss must skip one pad to find the end of the answer; GPT-2 adds nothing.
     * Checked on the fixtures' encoded rows as well as on the encoder's own answer.
     */
    @ParameterizedTest
    @FieldSource("TOKENIZERS")
    void paddingAtBeginningIsOneForOptAndZeroForGpt2(String name) {
        TextEncoder enc = SampleFixtures.encoder(name);
        int want = name.equals("opt_style") ? 1 : 0;
        assertEquals(want, enc.paddingAtBeginning(), name);
        int[] firstRow = DataFixtures.ints(SampleFixtures.of(name).get("reward").get("input_ids").get(0));
        int lead = 0;
        while (lead < firstRow.length && firstRow[lead] == enc.padId()) lead++;
        assertEquals(want, lead, name + ": pads before the text in DeepSpeed-Chat's own encoding");
    }
}
