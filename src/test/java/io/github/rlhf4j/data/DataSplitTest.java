package io.github.rlhf4j.data;

import static io.github.rlhf4j.data.DataSplit.Part.EVAL;
import static io.github.rlhf4j.data.DataSplit.Part.TRAIN;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.data.DataSplit.Part;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * DataSplit against DeepSpeed-Chat's create_dataset index arithmetic (split.expected.json, made with numpy), on the
 * real hh-rlhf sample and on fixtures: the rows of each phase, disjointness, blending, the on-disk cache.
 */
class DataSplitTest {
    private static final SplitSpec SPLIT = SplitSpec.parse("2,4,4");
    private static final long SEED = 1234;

    @TempDir
    Path tmp;

    static Dataset sample() {
        return SampleHolder.SAMPLE;
    }

    /** The sample is read once for the class (a few hundred ms). */
    private static final class SampleHolder {
        static final Dataset SAMPLE = Dataset.load(DataFixtures.hhSample());
    }

    private static JsonNode hh() {
        return DataFixtures.expected("split.expected.json").get("hh_sample");
    }

    @Test
    void oneFileDatasetGetsDeepSpeedChatsRowsInEachPhase() {
        Dataset d = sample();
        DataSplit split = DataSplit.of(List.of(d), SPLIT, SEED, tmp);
        JsonNode want = hh().get("one_file");
        for (Part part : Part.values())
            for (Phase phase : Phase.values())
                assertArrayEquals(DataFixtures.ints(want.get(key(part, phase))), split.indices(d, phase, part),
                        part + " " + phase);
    }

    @Test
    void datasetWithEvalFilesSplitsEachSide() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("hh"));
        Files.copy(DataFixtures.hhSample(), dir.resolve("train.jsonl.gz"));
        Files.copy(DataFixtures.file("hh-rlhf.jsonl"), dir.resolve("test.jsonl"));
        Dataset d = Dataset.load(dir);
        DataSplit split = DataSplit.of(List.of(d), SPLIT, SEED, null);
        JsonNode want = hh().get("with_eval_of_5");
        for (Part part : Part.values())
            for (Phase phase : Phase.values())
                assertArrayEquals(DataFixtures.ints(want.get(key(part, phase))), split.indices(d, phase, part),
                        part + " " + phase);
        // Eval phase 1 gets 1 of the 5 test rows; the fifth test row (empty chosen answer) is in phase 2 or 3.
        assertEquals(5, Stream.of(Phase.values()).mapToLong(p -> split.rows(p, EVAL).skips().rows()).sum());
        assertEquals(1, Stream.of(Phase.values()).mapToLong(p -> split.rows(p, EVAL).skips().skipped()).sum());
    }

    @Test
    void phasesAreDisjointAndCoverEveryRow() {
        Dataset d = sample();
        DataSplit split = DataSplit.of(List.of(d), SPLIT, SEED, null);
        BitSet seen = new BitSet();
        int total = 0;
        for (Part part : Part.values())
            for (Phase phase : Phase.values())
                for (int i : split.indices(d, phase, part)) {
                    assertFalse(seen.get(i), "row " + i + " is in two phases");
                    seen.set(i);
                    total++;
                }
        assertEquals(2000, total);
        assertEquals(2000, seen.cardinality());
        assertEquals(1800, Stream.of(Phase.values()).mapToInt(p -> split.indices(d, p, TRAIN).length).sum());
    }

    @Test
    void badRowsAreCountedInThePhaseThatDrawsThem() {
        Dataset d = sample();
        DataSplit split = DataSplit.of(List.of(d), SPLIT, SEED, null);
        List<Integer> bad = new ArrayList<>();
        hh().get("bad_lines").forEach(n -> bad.add(n.asInt()));
        long skipped = 0;
        for (Part part : Part.values())
            for (Phase phase : Phase.values()) {
                int[] idx = split.indices(d, phase, part);
                long want = Arrays.stream(idx).filter(i -> bad.contains(i + 1)).count();
                Rows<PreferenceRow> rows = split.pairs(phase, part);
                assertEquals(idx.length, rows.skips().rows(), part + " " + phase);
                assertEquals(want, rows.skips().count(SkipReason.EMPTY_TEXT), part + " " + phase);
                assertEquals(idx.length - want, rows.size(), part + " " + phase);
                for (var s : rows.skips().examples()) assertTrue(bad.contains((int) s.position().line()), s.toString());
                skipped += want;
            }
        assertEquals(4, skipped);
    }

    @Test
    void theSameSeedGivesTheSameRowsAndAnotherSeedOthers() {
        Dataset d = sample();
        DataSplit a = DataSplit.of(List.of(d), SPLIT, SEED, null), b = DataSplit.of(List.of(d), SPLIT, SEED, null),
                c = DataSplit.of(List.of(d), SPLIT, SEED + 1, null);
        for (Phase p : Phase.values()) {
            assertArrayEquals(a.indices(d, p, TRAIN), b.indices(d, p, TRAIN));
            assertEquals(a.pairs(p, TRAIN), b.pairs(p, TRAIN));
            assertFalse(Arrays.equals(a.indices(d, p, TRAIN), c.indices(d, p, TRAIN)), p.toString());
        }
    }

    @Test
    void blendedDatasetsAreConcatenatedAndReshuffledAsDeepSpeedChatDoes() {
        Path rm = DataFixtures.file("rm-static.jsonl");
        DataSplit split = DataSplit.of(List.of(sample(), Dataset.load(rm)), SPLIT, SEED, null);
        Rows<PreferenceRow> rows = split.pairs(Phase.SFT, TRAIN);
        JsonNode want = DataFixtures.expected("split.expected.json").get("blend_phase1_train").get("rows");
        assertEquals(want.size(), rows.size());
        for (int i = 0; i < rows.size(); i++) {
            RowPosition at = rows.position(i);
            int dataset = at.file().equals(rm) ? 1 : 0;
            assertEquals(want.get(i).get(0).asInt() + ":" + want.get(i).get(1).asInt(), dataset + ":" + at.line(),
                    "blended row " + i);
        }
    }

    @Test
    void indexFilesAreCachedUnderDeepSpeedChatsNamesAndReused() throws IOException {
        Dataset d = sample();
        DataSplit.of(List.of(d), SPLIT, SEED, tmp).rows(Phase.SFT, TRAIN);
        List<String> names;
        try (Stream<Path> s = Files.list(tmp)) {
            names = s.map(p -> p.getFileName().toString()).sorted().toList();
        }
        String n = d.name();
        assertEquals(List.of(n + "_seed1234_train_2,4,4_0.idx", n + "_seed1234_train_2,4,4_1.idx",
                n + "_seed1234_train_2,4,4_2.idx", n + "_seed1234_train_eval_9,1_0.idx",
                n + "_seed1234_train_eval_9,1_1.idx"), names, "no temp files left, eval's files not made yet");

        // Files made with seed 1235, renamed to seed 1234's names, are read instead of computed.
        Path other = Files.createDirectories(tmp.resolve("other"));
        DataSplit seed1235 = DataSplit.of(List.of(d), SPLIT, SEED + 1, other);
        int[] want = seed1235.indices(d, Phase.REWARD, TRAIN);
        try (Stream<Path> s = Files.list(other)) {
            for (Path p : s.toList())
                Files.move(p, p.resolveSibling(p.getFileName().toString().replace("seed1235", "seed1234")));
        }
        Map<Path, FileTime> before = times(other);
        assertArrayEquals(want, DataSplit.of(List.of(d), SPLIT, SEED, other).indices(d, Phase.REWARD, TRAIN));
        assertEquals(before, times(other));
    }

    @Test
    void staleOrDamagedIndexFilesAreRebuilt() throws IOException {
        Path f = tmp.resolve("p.jsonl"), cache = tmp.resolve("cache");
        writePrompts(f, 10);
        Dataset ten = Dataset.load(f);
        DataSplit.of(List.of(ten), SPLIT, SEED, cache).indices(ten, Phase.SFT, TRAIN);
        writePrompts(f, 30); // same path, same cache name, another row count
        Dataset thirty = Dataset.load(f);
        assertEquals(ten.name(), thirty.name());
        DataSplit split = DataSplit.of(List.of(thirty), SPLIT, SEED, cache);
        assertPartition(split, thirty, 30);
        // A damaged file: cut in half.
        try (Stream<Path> s = Files.list(cache)) {
            Path one = s.filter(p -> p.toString().endsWith("_train_2,4,4_1.idx")).findFirst().orElseThrow();
            byte[] bytes = Files.readAllBytes(one);
            Files.write(one, Arrays.copyOf(bytes, bytes.length / 2));
        }
        assertPartition(DataSplit.of(List.of(thirty), SPLIT, SEED, cache), thirty, 30);
        assertPartition(DataSplit.of(List.of(thirty), SPLIT, SEED, null), thirty, 30);
        for (Phase p : Phase.values())
            assertArrayEquals(DataSplit.of(List.of(thirty), SPLIT, SEED, null).indices(thirty, p, TRAIN),
                    DataSplit.of(List.of(thirty), SPLIT, SEED, cache).indices(thirty, p, TRAIN));
    }

    @Test
    void stepsGetTheRowTypesTheyNeed() {
        Dataset prompts = Dataset.load(DataFixtures.file("prompts.jsonl"));
        DataSplit split = DataSplit.of(List.of(prompts), SplitSpec.parse("0,0,1"), SEED, null);
        var e = assertThrows(IllegalArgumentException.class, () -> split.pairs(Phase.SFT, TRAIN));
        assertTrue(e.getMessage().contains("has schema 'prompt'"), e.getMessage());
        assertTrue(e.getMessage().contains("step 1 needs preference pairs"), e.getMessage());
        assertEquals(4, split.prompts(Phase.PPO, TRAIN).size());

        Dataset rm = Dataset.load(DataFixtures.file("rm-static.jsonl"));
        DataSplit s2 = DataSplit.of(List.of(rm), SplitSpec.parse("0,0,1"), SEED, null);
        Rows<PreferenceRow> pairs = s2.pairs(Phase.PPO, TRAIN);
        Rows<PromptRow> asPrompts = s2.prompts(Phase.PPO, TRAIN);
        assertEquals(pairs.stream().map(PreferenceRow::prompt).toList(),
                asPrompts.stream().map(PromptRow::prompt).toList());

        DataSplit text = DataSplit.of(List.of(Dataset.load(DataFixtures.file("text.jsonl"))), SPLIT, SEED, null);
        assertThrows(IllegalArgumentException.class, () -> text.prompts(Phase.PPO, TRAIN));
        assertThrows(IllegalArgumentException.class, () -> DataSplit.of(List.of(rm), SplitSpec.parse("9,1"), SEED,
                null));
        assertThrows(IllegalArgumentException.class, () -> DataSplit.of(List.of(rm), SPLIT, -1, null));
    }

    private static void assertPartition(DataSplit split, Dataset d, int rows) {
        BitSet seen = new BitSet();
        int total = 0;
        for (Part part : Part.values())
            for (Phase p : Phase.values())
                for (int i : split.indices(d, p, part)) {
                    assertTrue(i >= 0 && i < rows && !seen.get(i), "row " + i);
                    seen.set(i);
                    total++;
                }
        assertEquals(rows, total);
    }

    private static void writePrompts(Path f, int n) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) sb.append("{\"prompt\": \"\\n\\nHuman: ").append(i).append("?\\n\\nAssistant:\"}\n");
        Files.writeString(f, sb);
    }

    private static Map<Path, FileTime> times(Path dir) throws IOException {
        Map<Path, FileTime> out = new HashMap<>();
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.toList()) out.put(p, Files.getLastModifiedTime(p));
        }
        return out;
    }

    private static String key(Part part, Phase phase) {
        return (part == TRAIN ? "train" : "eval") + "_" + phase.step();
    }
}
