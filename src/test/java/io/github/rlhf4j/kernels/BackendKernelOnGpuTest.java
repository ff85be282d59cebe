package io.github.rlhf4j.kernels;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

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
        var cuda = Backend.cuda();
        assumeTrue(cuda.isPresent(), "no CUDA backend in this build (librlhf4j_cuda.so is built when nvcc is "
                + "present): GPU checks skipped");
        assumeTrue(cuda.get().deviceCount() > 0, "CUDA backend loaded but no GPU visible: GPU checks skipped");
    }

    @Override
    Device dev() {
        return Device.cuda(0);
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
