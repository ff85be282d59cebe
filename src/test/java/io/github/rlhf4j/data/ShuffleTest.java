package io.github.rlhf4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

/** Shuffle against numpy's RandomState(seed).shuffle(arange(n)), as DeepSpeed-Chat's get_shuffle_idx calls it. */
class ShuffleTest {
    @Test
    void permutationIsNumpysRandomStateShuffle() {
        JsonNode shuffles = DataFixtures.expected("split.expected.json").get("shuffles");
        for (JsonNode s : shuffles) {
            long seed = s.get("seed").asLong();
            int n = s.get("size").asInt();
            assertArrayEquals(DataFixtures.ints(s.get("index")), Shuffle.permutation(seed, n),
                    "get_shuffle_idx(" + seed + ", " + n + ")");
        }
    }

    @Test
    void seedOutsideNumpysRangeIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> Shuffle.permutation(-1, 3));
        assertThrows(IllegalArgumentException.class, () -> Shuffle.permutation(1L << 32, 3));
        assertThrows(IllegalArgumentException.class, () -> Shuffle.permutation(1, -1));
    }
}
