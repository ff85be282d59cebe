package io.github.rlhf4j.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Loading files and folders: schema detection, bad rows skipped and counted with positions. */
class DatasetTest {
    @TempDir
    Path tmp;

    @Test
    void eachFixtureFindsItsSchema() {
        assertSame(RowSchema.RM_STATIC, Dataset.load(DataFixtures.file("rm-static.jsonl")).schema());
        assertSame(RowSchema.RM_STATIC, Dataset.load(DataFixtures.file("rm-static.jsonl.gz")).schema());
        assertSame(RowSchema.RM_STATIC, Dataset.load(DataFixtures.file("rm-static.parquet")).schema());
        assertSame(RowSchema.HH_RLHF, Dataset.load(DataFixtures.file("hh-rlhf.jsonl")).schema());
        assertSame(RowSchema.PROMPT, Dataset.load(DataFixtures.file("prompts.jsonl")).schema());
        assertSame(RowSchema.TEXT, Dataset.load(DataFixtures.file("text.jsonl")).schema());
    }

    @Test
    void badRowsAreSkippedAndCountedWithTheirLines() {
        Path f = DataFixtures.file("bad-rows.jsonl");
        Rows<Row> rows = Dataset.load(f).train();
        assertEquals(3, rows.size());
        assertEquals(List.of(1L, 8L, 10L), List.of(rows.position(0).line(), rows.position(1).line(),
                rows.position(2).line()));
        SkipReport s = rows.skips();
        assertEquals(9, s.rows());
        assertEquals(6, s.skipped());
        assertEquals(2, s.count(SkipReason.MISSING_FIELD));
        assertEquals(3, s.count(SkipReason.WRONG_TYPE));
        assertEquals(1, s.count(SkipReason.EMPTY_TEXT));
        assertEquals(SkipReport.EXAMPLES, s.examples().size());
        assertEquals(List.of(f + ":2: missing field 'rejected'", f + ":3: field 'chosen' is a number, not text",
                f + ":4: field 'prompt' is null", f + ":5: field 'chosen' is empty",
                f + ":7: the line is a list, not a JSON object"), s.examples().stream().map(Object::toString).toList());
        assertTrue(s.summary().startsWith("9 rows, 6 skipped (2 missing field, 3 wrong type, 1 empty text); first: "
                + f + ":2: missing field 'rejected', "), s.summary());
        assertTrue(s.summary().endsWith(", ..."), s.summary());
    }

    @Test
    void parquetNullAndWrongTypeAreBadRows() {
        Path f = DataFixtures.file("rm-static.parquet");
        Rows<Row> rows = Dataset.load(f).train();
        assertEquals(8, rows.size());
        assertEquals(List.of(f + ": row 8 (row group 2): field 'chosen' is null"),
                rows.skips().examples().stream().map(Object::toString).toList());
        Rows<Row> wrong = Dataset.load(DataFixtures.file("wrong-type.parquet"), RowSchema.RM_STATIC).train();
        assertEquals(0, wrong.size());
        assertEquals(9, wrong.skips().count(SkipReason.WRONG_TYPE), "the prompt is checked first");
        assertEquals("field 'prompt' is a number, not text", wrong.skips().examples().getFirst().message());
    }

    @Test
    void parquetAndJsonGiveTheSameRows() {
        Rows<Row> json = Dataset.load(DataFixtures.file("rm-static.jsonl")).train();
        Rows<Row> pq = Dataset.load(DataFixtures.file("rm-static.parquet")).train();
        assertEquals(json, pq);
    }

    @Test
    void fileWithUnknownFieldsNamesThemAndTheFile() throws IOException {
        Path f = Files.writeString(tmp.resolve("qa.jsonl"), "{\"question\": \"q\", \"answer\": \"a\"}\n");
        var e = assertThrows(DataFormatException.class, () -> Dataset.load(f));
        assertTrue(e.getMessage().startsWith(f + ": cannot tell the schema from the fields of its first record"
                + " [question, answer]"), e.getMessage());
    }

    @Test
    void givenSchemaOverridesDetection() {
        Dataset d = Dataset.load(DataFixtures.file("rm-static.jsonl"), RowSchema.PROMPT);
        assertEquals(new PromptRow("\n\nHuman: What is the capital of France?\n\nAssistant:"), d.train().getFirst());
    }

    @Test
    void folderInHuggingFaceLayoutHasTrainAndEvalFiles() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("ds/data"));
        Files.copy(DataFixtures.file("rm-static.jsonl"), dir.resolve("train-00000-of-00002.jsonl"));
        Files.copy(DataFixtures.file("rm-static.parquet"), dir.resolve("train-00001-of-00002.parquet"));
        Files.copy(DataFixtures.file("rm-static.jsonl.gz"), dir.resolve("test-00000-of-00001.jsonl.gz"));
        Files.writeString(dir.resolve("README.md"), "not data");
        Dataset d = Dataset.load(tmp.resolve("ds"));
        assertTrue(d.hasEval());
        assertEquals(2, d.trainFiles().size());
        assertEquals(16, d.train().size());
        assertEquals(1, d.train().skips().skipped());
        assertSame(RowSchema.RM_STATIC, d.schema());
    }

    @Test
    void folderWithoutSplitNamesReadsEverythingAsTrain() throws IOException {
        Files.copy(DataFixtures.file("prompts.jsonl"), tmp.resolve("a.jsonl"));
        Files.copy(DataFixtures.file("prompts.jsonl"), tmp.resolve("b.jsonl"));
        Dataset d = Dataset.load(tmp);
        assertFalse(d.hasEval());
        assertEquals(8, d.train().size());
    }

    @Test
    void emptyOrMissingPathsAreNamed() throws IOException {
        Path none = tmp.resolve("none");
        assertEquals(none + ": no such file or folder",
                assertThrows(DataFormatException.class, () -> Dataset.load(none)).getMessage());
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        assertTrue(assertThrows(DataFormatException.class, () -> Dataset.load(empty)).getMessage()
                .startsWith(empty + ": a folder without data files"));
        Path blank = Files.writeString(tmp.resolve("blank.jsonl"), "\n\n");
        assertEquals(blank + ": no records to find the schema from",
                assertThrows(DataFormatException.class, () -> Dataset.load(blank)).getMessage());
        assertEquals(0, Dataset.load(blank, RowSchema.TEXT).train().size());
    }

    @Test
    void cacheNameIsTheFileNameAndAPathHash() throws IOException {
        Dataset a = Dataset.load(DataFixtures.file("rm-static.jsonl.gz"));
        assertTrue(a.name().matches("rm-static-[0-9a-f]{8}"), a.name());
        Path copy = Files.copy(DataFixtures.file("rm-static.jsonl.gz"), tmp.resolve("rm-static.jsonl.gz"));
        assertNotEquals(a.name(), Dataset.load(copy).name());
    }

    @Test
    void textsAreForPlainTextOnly() {
        assertEquals(5, Dataset.load(DataFixtures.file("text.jsonl")).texts().size());
        var e = assertThrows(IllegalArgumentException.class,
                () -> Dataset.load(DataFixtures.file("prompts.jsonl")).texts());
        assertTrue(e.getMessage().contains("cannot be the unsupervised dataset"), e.getMessage());
    }
}
