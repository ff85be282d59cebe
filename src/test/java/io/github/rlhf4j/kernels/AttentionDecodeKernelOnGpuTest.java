package io.github.rlhf4j.kernels;

import io.github.rlhf4j.runtime.DType;
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
        OnGpu.require("AttentionDecodeKernelOnGpuTest");
    }

    @Override
    KernelCheck check(DType dt) {
        return KernelCheck.on(OnGpu.device(), dt);
    }
}
