package io.github.rlhf4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;

/** ptx blocks against DeepSpeed-Chat's get_unsupervised_data (tokenize, then group_texts per datasets.map batch). */
class TextBlocksTest {
    static final List<String> TOKENIZERS = SampleFixtures.TOKENIZERS;

    @ParameterizedTest
    @FieldSource("TOKENIZERS")
    void blocksMatchGroupTexts(String name) {
        JsonNode want = SampleFixtures.of(name).get("ptx");
        int block = SampleFixtures.all().get("block_size").asInt();
        TextBlocks t = TextBlocks.build(Dataset.load(DataFixtures.file("text.jsonl")).texts(),
                SampleFixtures.encoder(name), block);
        assertBlocks(want.get("blocks"), t);
        LmBatch b = t.batch(DataFixtures.range(t.size()));
        assertArrayEquals(DataFixtures.flat(want.get("blocks")), b.inputIds());
        assertArrayEquals(b.inputIds(), b.labels());
        for (int m : b.attentionMask()) assertEquals(1, m);
    }

    @ParameterizedTest
    @FieldSource("TOKENIZERS")
    void moreTextsThanOneMapBatchAreGroupedPerBatch(String name) {
        JsonNode all = SampleFixtures.all();
        List<TextRow> rows = new ArrayList<>();
        List<RowPosition> at = new ArrayList<>();
        for (int i = 0; i < all.get("many_texts").asInt(); i++) {
            rows.add(new TextRow("row " + i + ".")); // make_data_fixtures.py's many_text(i)
            at.add(RowPosition.line(java.nio.file.Path.of("many"), i + 1));
        }
        TextBlocks t = TextBlocks.build(Rows.of(rows, at), SampleFixtures.encoder(name), all.get("block_size").asInt());
        assertBlocks(SampleFixtures.of(name).get("ptx").get("many_blocks"), t);
    }

    private static void assertBlocks(JsonNode want, TextBlocks got) {
        assertEquals(want.size(), got.size());
        for (int i = 0; i < got.size(); i++) assertArrayEquals(DataFixtures.ints(want.get(i)), got.block(i), "block " + i);
    }
}
