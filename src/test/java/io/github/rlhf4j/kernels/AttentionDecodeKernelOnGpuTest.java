package io.github.rlhf4j.kernels;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.rlhf4j.runtime.Backend;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;

/**
 * AttentionDecodeKernelTest's cases on a real GPU (CUDA device 0) against the CPU backend. The split-K decision
 * follows the device's SM count, so a case may split differently than in emulation (132 SMs). Skipped, saying why,
 * where there is no CUDA backend or no GPU.
 */
@Tag("gpu")
class AttentionDecodeKernelOnGpuTest extends AttentionDecodeKernelTest {
    @BeforeAll
    static void needsGpu() {
        var cuda = Backend.cuda();
        assumeTrue(cuda.isPresent(), "no CUDA backend in this build (librlhf4j_cuda.so is built when nvcc is "
                + "present): GPU decode attention checks skipped");
        assumeTrue(cuda.get().deviceCount() > 0, "CUDA backend loaded but no GPU visible: GPU decode attention checks "
                + "skipped");
    }

    @Override
    KernelCheck check(DType dt) {
        return KernelCheck.on(Device.cuda(0), dt);
    }
}
