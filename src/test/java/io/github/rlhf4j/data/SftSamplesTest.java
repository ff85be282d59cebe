package io.github.rlhf4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;

/** Step-1 samples against DeepSpeed-Chat's create_dataset_split(train_phase=1) run with transformers. */
class SftSamplesTest {
    static final List<String> TOKENIZERS = SampleFixtures.TOKENIZERS;

    @ParameterizedTest
    @FieldSource("TOKENIZERS")
    void samplesMatchDeepSpeedChat(String name) {
        JsonNode want = SampleFixtures.of(name);
        TextEncoder enc = SampleFixtures.encoder(name);
        assertEquals(want.get("pad_token_id").asInt(), enc.padId(), "pad = eos, as DeepSpeed-Chat's get_tokenizer");
        SftSamples s = SftSamples.build(SampleFixtures.pairs(), enc, SampleFixtures.maxSeqLen());
        JsonNode sft = want.get("sft");
        assertEquals(sft.size(), s.size());
        LmBatch b = s.batch(DataFixtures.range(s.size()));
        assertEquals(SampleFixtures.maxSeqLen(), b.columns());
        int[] ids = new int[0], mask = new int[0], labels = new int[0];
        for (JsonNode row : sft) {
            ids = concat(ids, DataFixtures.ints(row.get("input_ids")));
            mask = concat(mask, DataFixtures.ints(row.get("attention_mask")));
            labels = concat(labels, DataFixtures.ints(row.get("labels")));
        }
        assertArrayEquals(ids, b.inputIds(), name + ": input_ids");
        assertArrayEquals(mask, b.attentionMask(), name + ": attention_mask");
        assertArrayEquals(labels, b.labels(), name + ": labels");
        // Some rows were cut at max_seq_len and some padded, so both paths were compared.
        int full = 0;
        for (JsonNode row : sft)
            if (java.util.Arrays.stream(DataFixtures.ints(row.get("attention_mask"))).allMatch(m -> m == 1)) full++;
        assertEquals(true, full > 0 && full < sft.size(), "cut rows: " + full);
    }

    @ParameterizedTest
    @FieldSource("TOKENIZERS")
    void batchTakesTheGivenSamplesInOrder(String name) {
        SftSamples s = SftSamples.build(SampleFixtures.pairs(), SampleFixtures.encoder(name), SampleFixtures.maxSeqLen());
        JsonNode sft = SampleFixtures.of(name).get("sft");
        LmBatch b = s.batch(new int[] {5, 2});
        assertEquals(2, b.rows());
        assertArrayEquals(DataFixtures.ints(sft.get(5).get("input_ids")), b.row(0));
        assertArrayEquals(DataFixtures.ints(sft.get(2).get("input_ids")), b.row(1));
    }

    static int[] concat(int[] a, int[] b) {
        int[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
