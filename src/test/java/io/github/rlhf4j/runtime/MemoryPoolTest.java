package io.github.rlhf4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class MemoryPoolTest {
    @Test
    void sizeClassesBoundTheWasteAndNeverShrink() {
        long prev = 0;
        for (long b = 1; b < (1L << 34); b = b * 3 / 2 + 1) {
            long c = MemoryPool.sizeClass(b);
            assertTrue(c >= b, "class " + c + " < request " + b);
            assertTrue(c >= prev, "classes must grow with the request");
            if (b > (1 << 20)) assertTrue(c <= b * 1.125 + 1, "more than 12.5% waste at " + b);
            prev = c;
        }
        assertEquals(512, MemoryPool.sizeClass(1));
        assertEquals(1 << 20, MemoryPool.sizeClass(1 << 20));
    }

    @Test
    void releasedBlocksAreReusedAndTrimReturnsThem() {
        Device dev = Device.cpu();
        MemoryPool pool = dev.pool();
        pool.trim();
        long base = dev.memory().inUse();
        long a = pool.allocate(10_000);
        long cls = MemoryPool.sizeClass(10_000);
        pool.release(a, cls);
        long b = pool.allocate(9_900); // same class
        assertEquals(a, b, "a released block of the same class must be reused");
        assertEquals(base + cls, dev.memory().inUse());
        pool.release(b, cls);
        assertEquals(cls, pool.cachedBytes());
        pool.trim();
        assertEquals(base, dev.memory().inUse());
    }
}
