package io.github.rlhf4j.kernels;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;

/**
 * AttentionKernelTest's cases (forward and backward, tensor-core and SIMT paths) on a real GPU (CUDA device 0) against
 * the CPU backend, at the same tolerances. Skipped, saying why, where there is no CUDA backend or no GPU.
 */
@Tag("gpu")
class AttentionKernelOnGpuTest extends AttentionKernelTest {
    @BeforeAll
    static void needsGpu() {
        OnGpu.require("AttentionKernelOnGpuTest");
    }

    @Override
    KernelCheck check(DType dt) {
        return KernelCheck.on(OnGpu.device(), dt);
    }

    @Override
    Device device() {
        return OnGpu.device();
    }
}
