package io.github.rlhf4j.kernels;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.rlhf4j.runtime.Backend;
import io.github.rlhf4j.runtime.Device;

/**
 * What the {@code *OnGpuTest} classes share: they rerun an emulated kernel test's cases on CUDA device 0, and skip,
 * saying why, where this build has no CUDA backend or the machine no GPU.
 */
final class OnGpu {
    private OnGpu() {}

    /**
     * Skips the calling test class (a JUnit assumption) unless a real GPU is there, and says why on the console too:
     * a class skipped in its {@code @BeforeAll} shows in surefire's summary as 0 tests run, with no reason.
     */
    static void require(String testClass) {
        var cuda = Backend.cuda();
        String why = cuda.isEmpty()
                ? "no CUDA backend in this build (librlhf4j_cuda.so is built when nvcc is present)"
                : cuda.get().deviceCount() == 0 ? "CUDA backend loaded but no GPU visible" : null;
        if (why != null) System.out.println(testClass + " skipped: " + why);
        assumeTrue(why == null, () -> why + ": " + testClass + " skipped");
        System.out.println(testClass + " on " + cuda.get().features());
    }

    static Device device() {
        return Device.cuda(0);
    }
}
