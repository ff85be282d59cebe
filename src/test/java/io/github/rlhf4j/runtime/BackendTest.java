package io.github.rlhf4j.runtime;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import org.junit.jupiter.api.Test;

class BackendTest {
    /** The process environment as libgomp sees it (System.getenv is a snapshot taken at JVM start). */
    private static String nativeGetenv(String name) throws Throwable {
        Linker linker = Linker.nativeLinker();
        MethodHandle getenv = linker.downcallHandle(linker.defaultLookup().find("getenv").orElseThrow(),
                FunctionDescriptor.of(ADDRESS, ADDRESS));
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = (MemorySegment) getenv.invokeExact(a.allocateFrom(name));
            return v.equals(MemorySegment.NULL) ? null : v.reinterpret(64).getString(0);
        }
    }

    @Test
    void openMpSpinningIsBoundedBeforeTheCpuBackendLoads() throws Throwable {
        assumeTrue(System.getenv("OMP_WAIT_POLICY") == null && System.getenv("GOMP_SPINCOUNT") == null,
                "the user chose an OpenMP wait policy, which rlhf4j leaves alone");
        Backend.cpu();
        assertEquals(System.getProperty("rlhf4j.gomp.spincount", "30000"), nativeGetenv("GOMP_SPINCOUNT"));
    }

    @Test
    void cudaBackendIsAbsentOrLoadsWithItsDeviceCount() {
        Backend.cuda().ifPresent(b -> {
            assertEquals("cuda", b.name());
            assertTrue(b.deviceCount() >= 0);
        });
        assertTrue(NativeLoader.platform().matches("[a-z]+-[a-z0-9_]+"), NativeLoader.platform());
    }
}
