package io.github.rlhf4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

/** SplitSpec's boundaries against hand-computed cases and DeepSpeed-Chat's get_raw_dataset_split_index. */
class SplitSpecTest {
    @Test
    void boundariesFollowDeepSpeedChatsRoundingByHand() {
        // 2,4,4 of 10: 0.2*10 = 2, 0.4*10 = 4, 4 -> [0, 2, 6, 10].
        assertArrayEquals(new int[] {0, 2, 6, 10}, SplitSpec.parse("2,4,4").boundaries(10));
        // 1,1,1 of 7: round(2.333) = 2 three times -> [0, 2, 4, 6], one short: every boundary moves up one.
        assertArrayEquals(new int[] {0, 3, 5, 7}, SplitSpec.parse("1,1,1").boundaries(7));
        // 1,1,1 of 2: round(0.667) = 1 three times -> [0, 1, 2, 3], one over: every boundary moves down one.
        assertArrayEquals(new int[] {0, 0, 1, 2}, SplitSpec.parse("1,1,1").boundaries(2));
        // 1,1,1 of 1: all round to 0 -> the one row goes to the first part.
        assertArrayEquals(new int[] {0, 1, 1, 1}, SplitSpec.parse("1,1,1").boundaries(1));
        // 1,1 of 5: 2.5 rounds half to even, to 2, twice -> [0, 2, 4] -> [0, 3, 5].
        assertArrayEquals(new int[] {0, 3, 5}, SplitSpec.parse("1,1").boundaries(5));
        // 1,1 of 3: 1.5 rounds to 2 twice -> [0, 2, 4] -> [0, 1, 3].
        assertArrayEquals(new int[] {0, 1, 3}, SplitSpec.parse("1,1").boundaries(3));
        assertArrayEquals(new int[] {0, 0, 0, 0}, SplitSpec.parse("2,4,4").boundaries(0));
        assertArrayEquals(new int[] {0, 400, 1200, 2000}, SplitSpec.dsChatDefault().boundaries(2000));
    }

    @Test
    void boundariesMatchDeepSpeedChat() {
        JsonNode cases = DataFixtures.expected("split.expected.json").get("cases");
        assertTrue(cases.size() >= 10);
        for (JsonNode c : cases) {
            SplitSpec s = SplitSpec.parse(c.get("split").asText());
            assertArrayEquals(DataFixtures.ints(c.get("boundaries")), s.boundaries(c.get("size").asInt()),
                    () -> "split " + c.get("split").asText() + " of " + c.get("size").asInt());
        }
    }

    @Test
    void parseNamesThePartAtFault() {
        assertEquals("2,4,4", SplitSpec.parse(" 2, 4 ,4").text());
        assertEquals(3, SplitSpec.parse("0.5,0.25,0.25").parts());
        var e = assertThrows(IllegalArgumentException.class, () -> SplitSpec.parse("2,x,4"));
        assertTrue(e.getMessage().contains("part 2 ('x')"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SplitSpec.parse("2,-1,4"));
        assertTrue(e.getMessage().contains("part 2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SplitSpec.parse("0,0,0"));
        assertTrue(e.getMessage().contains("add up to 0"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> SplitSpec.parse("2,,4"));
        assertThrows(IllegalArgumentException.class, () -> SplitSpec.parse("nan,1,1"));
        assertThrows(IllegalArgumentException.class, () -> SplitSpec.parse("inf,1,1"));
    }
}
