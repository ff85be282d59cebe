package io.github.rlhf4j.kernels;

import io.github.rlhf4j.runtime.Backend;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.NativeLoader;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;

/**
 * BackendKernelTest on a real GPU (CUDA device 0): the caching allocator's reuse and registry, memory counts, copies,
 * streams and error messages with cudaMalloc underneath; the emulation-only checks (0xFF refill, slack overrun) are
 * skipped with their reason. Skipped altogether, saying why, where there is no CUDA backend or no GPU.
 */
@Tag("gpu")
class BackendKernelOnGpuTest extends BackendKernelTest {
    @BeforeAll
    static void needsGpu() {
        OnGpu.require("BackendKernelOnGpuTest");
    }

    @Override
    Device dev() {
        return OnGpu.device();
    }

    @Override
    Path library() {
        return NativeLoader.find(Backend.CUDA).orElseThrow();
    }

    @Override
    boolean emulated() {
        return false;
    }
}
