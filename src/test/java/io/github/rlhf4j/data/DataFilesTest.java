package io.github.rlhf4j.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reading JSON Lines (plain, gzip, JSON arrays) and Parquet, and the errors for files that do not parse. */
class DataFilesTest {
    @TempDir
    Path tmp;

    /** Everything a read hands on, as "position -> json" or "position !! message". */
    static List<String> read(Path file) {
        List<String> out = new ArrayList<>();
        DataFiles.read(file, new DataFiles.Sink() {
            @Override
            public void record(RowPosition at, RawRow record) {
                out.add(at + " -> " + record.json());
            }

            @Override
            public void bad(RowPosition at, BadRowException why) {
                out.add(at + " !! " + why.reason() + " " + why.getMessage());
            }
        });
        return out;
    }

    static List<JsonNode> jsonLines(Path file) throws IOException {
        ObjectMapper m = new ObjectMapper();
        List<JsonNode> out = new ArrayList<>();
        for (String line : Files.readAllLines(file)) if (!line.isBlank()) out.add(m.readTree(line));
        return out;
    }

    @Test
    void jsonLinesAreReadWithTheirLineNumbers() throws IOException {
        Path f = DataFixtures.file("rm-static.jsonl");
        List<String> got = read(f);
        List<JsonNode> want = jsonLines(f);
        assertEquals(want.size(), got.size());
        for (int i = 0; i < want.size(); i++) assertEquals(f + ":" + (i + 1) + " -> " + want.get(i), got.get(i));
    }

    @Test
    void gzipFileReadsAsThePlainOne() {
        List<String> plain = read(DataFixtures.file("rm-static.jsonl"));
        List<String> gz = read(DataFixtures.file("rm-static.jsonl.gz"));
        assertEquals(plain.size(), gz.size());
        for (int i = 0; i < plain.size(); i++)
            assertEquals(plain.get(i).substring(plain.get(i).indexOf(" -> ")), gz.get(i).substring(gz.get(i).indexOf(" -> ")));
        assertTrue(gz.getFirst().startsWith(DataFixtures.file("rm-static.jsonl.gz") + ":1 -> "), gz.getFirst());
    }

    @Test
    void jsonArrayFileGivesEachObjectItsLine() throws IOException {
        Path f = tmp.resolve("rows.json");
        Files.writeString(f, "\n[\n  {\"text\": \"a\"},\n  {\"text\": \"b\"}, 5,\n  {\"text\": \"c\"}\n]\n");
        assertEquals(List.of(f + ":3 -> {\"text\":\"a\"}", f + ":4 -> {\"text\":\"b\"}",
                f + ":4 !! WRONG_TYPE the array element is a number, not a JSON object", f + ":5 -> {\"text\":\"c\"}"),
                read(f));
    }

    @Test
    void blankLinesAndNonObjectsInJsonLines() {
        Path f = DataFixtures.file("bad-rows.jsonl");
        List<String> got = read(f);
        assertEquals(9, got.size(), "ten lines, one blank");
        assertTrue(got.get(5).startsWith(f + ":7 !! WRONG_TYPE the line is a list"), got.get(5));
        assertTrue(got.get(6).startsWith(f + ":8 -> "), got.get(6));
    }

    @Test
    void lineThatIsNotJsonStopsTheReadWithFileAndLine() {
        Path f = DataFixtures.file("broken.jsonl");
        var e = assertThrows(DataFormatException.class, () -> read(f));
        assertTrue(e.getMessage().startsWith(f + ":3:"), e.getMessage());
        assertTrue(e.getMessage().contains("not valid JSON"), e.getMessage());
    }

    @Test
    void trailingTextAfterAnObjectIsNotJson() throws IOException {
        Path f = tmp.resolve("t.jsonl");
        Files.writeString(f, "{\"text\": \"a\"}\n{\"text\": \"b\"} x\n");
        var e = assertThrows(DataFormatException.class, () -> read(f));
        assertTrue(e.getMessage().startsWith(f + ":2:"), e.getMessage());
    }

    @Test
    void truncatedGzipStopsWithTheFile() throws IOException {
        byte[] gz = Files.readAllBytes(DataFixtures.file("rm-static.jsonl.gz"));
        Path f = tmp.resolve("cut.jsonl.gz");
        Files.write(f, java.util.Arrays.copyOf(gz, gz.length - 40));
        var e = assertThrows(DataFormatException.class, () -> read(f));
        assertTrue(e.getMessage().startsWith(f + ":"), e.getMessage());
        assertTrue(e.getMessage().contains("gzip"), e.getMessage());
    }

    @Test
    void invalidUtf8StopsWithFileAndLine() throws IOException {
        Path f = tmp.resolve("latin1.jsonl");
        Files.write(f, "{\"text\": \"ok\"}\n{\"text\": \"caf\u00e9\"}\n".getBytes(StandardCharsets.ISO_8859_1));
        var e = assertThrows(DataFormatException.class, () -> read(f));
        assertEquals(f + ":2: not valid UTF-8 text", e.getMessage());
    }

    @Test
    void unknownTypeAndMissingFileAreNamed() throws IOException {
        Path csv = Files.writeString(tmp.resolve("rows.csv"), "a,b\n");
        var e = assertThrows(DataFormatException.class, () -> read(csv));
        assertTrue(e.getMessage().startsWith(csv + ": unknown data file type"), e.getMessage());
        Path none = tmp.resolve("none.jsonl");
        e = assertThrows(DataFormatException.class, () -> read(none));
        assertEquals(none + ": no such file", e.getMessage());
    }

    @Test
    void parquetRowsMatchTheJsonRowsTheyWereWrittenFrom() throws IOException {
        Path pq = DataFixtures.file("rm-static.parquet");
        List<String> got = read(pq);
        List<JsonNode> want = jsonLines(DataFixtures.file("rm-static.jsonl"));
        assertEquals(want.size() + 1, got.size(), "the JSON rows plus one with a null 'chosen'");
        for (int i = 0; i < got.size(); i++) {
            String prefix = pq + ": row " + i + " (row group " + i / 4 + ") -> ";
            assertTrue(got.get(i).startsWith(prefix), got.get(i));
            if (i < want.size()) assertEquals(want.get(i).toString(), got.get(i).substring(prefix.length()));
        }
        assertTrue(got.getLast().contains("\"chosen\":null"), got.getLast());
    }

    @Test
    void parquetColumnsKeepTheirTypes() {
        List<String> got = read(DataFixtures.file("wrong-type.parquet"));
        assertEquals(9, got.size());
        assertTrue(got.get(5).contains("-> {\"prompt\":5,\"chosen\":\" Guten Morgen.\""), got.get(5));
    }

    @Test
    void truncatedParquetIsNotReadable() throws IOException {
        byte[] bytes = Files.readAllBytes(DataFixtures.file("rm-static.parquet"));
        Path f = tmp.resolve("cut.parquet");
        Files.write(f, java.util.Arrays.copyOf(bytes, bytes.length / 2));
        var e = assertThrows(DataFormatException.class, () -> read(f));
        assertTrue(e.getMessage().startsWith(f + ": not a readable Parquet file"), e.getMessage());
    }

    @Test
    void damagedRowGroupIsNamed() throws IOException {
        // Overwrite the middle of row group 1 (rows 4-7) with garbage; row group 0 stays intact.
        Path src = DataFixtures.file("rm-static.parquet");
        long[] starts = rowGroupStarts(src);
        byte[] bytes = Files.readAllBytes(src);
        for (long i = starts[1] + 8; i < starts[2] - 8; i++) bytes[(int) i] = (byte) 0xA5;
        Path f = tmp.resolve("damaged.parquet");
        Files.write(f, bytes);
        List<String> seen = new ArrayList<>();
        var e = assertThrows(DataFormatException.class, () -> DataFiles.read(f, new DataFiles.Sink() {
            @Override
            public void record(RowPosition at, RawRow record) {
                seen.add(at.toString());
            }

            @Override
            public void bad(RowPosition at, BadRowException why) {}
        }));
        assertTrue(e.getMessage().startsWith(f + ": row group 1 of 3 cannot be read"), e.getMessage());
        assertEquals(4, seen.size(), "row group 0 was read before the damaged one: " + seen);
    }

    @Test
    void zstdParquetSaysWhichCodecToAdd() {
        Path f = DataFixtures.file("rm-static-zstd.parquet");
        var e = assertThrows(DataFormatException.class, () -> read(f));
        assertTrue(e.getMessage().startsWith(f + ": row group 0 of 3 cannot be read"), e.getMessage());
        assertTrue(e.getMessage().contains("zstd-jni"), e.getMessage());
    }

    /** Where each row group starts, from the metadata Hardwood reads (the test's view, not ParquetFiles'). */
    private static long[] rowGroupStarts(Path f) throws IOException {
        try (var r = dev.hardwood.reader.ParquetFileReader.open(dev.hardwood.InputFile.of(f))) {
            return r.getFileMetaData().rowGroups().stream().mapToLong(g -> g.columns().stream()
                    .mapToLong(c -> c.chunkStartOffset()).min().orElseThrow()).toArray();
        }
    }
}
