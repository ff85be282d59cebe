package io.github.rlhf4j.data;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.testing.Fixtures;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The data fixtures of src/test/python/make_data_fixtures.py
 * ({@code fixtures/data/}), and the real hh-rlhf sample of the shared data folder.
 */
final class DataFixtures {
    private DataFixtures() {}

    /** A fixture file of {@code fixtures/data/}. */
    static Path file(String name) {
        URL url = DataFixtures.class.getResource("/fixtures/data/" + name);
        if (url == null) throw new IllegalStateException("missing test fixture /fixtures/data/" + name);
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static JsonNode expected(String name) {
        return Fixtures.load("data/" + name);
    }

    /** The 2,000-pair hh-rlhf sample; skips the test (visibly) when the shared data folder is absent. */
    static Path hhSample() {
        Path data = TokenizerFixtures.sharedData();
        Path f = data == null ? null : data.resolve("hh-rlhf/harmless-base-sample.jsonl.gz");
        assumeTrue(f != null && Files.isRegularFile(f), "hh-rlhf sample not found (looked in -Drlhf4j.sharedData,"
                + " -Drlhf4j.shared/data, ../shared/data, /work/shared/data): skipping the test on real data");
        return f;
    }

    static int[] ints(JsonNode list) {
        int[] out = new int[list.size()];
        for (int i = 0; i < out.length; i++) out[i] = list.get(i).asInt();
        return out;
    }

    static int[] flat(JsonNode rows) {
        List<Integer> out = new ArrayList<>();
        rows.forEach(r -> r.forEach(x -> out.add(x.asInt())));
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    static int[] range(int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) out[i] = i;
        return out;
    }
}
