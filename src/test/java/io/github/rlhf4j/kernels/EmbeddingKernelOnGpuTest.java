package io.github.rlhf4j.kernels;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;

/**
 * EmbeddingKernelTest's cases on a real GPU (CUDA device 0) against the CPU backend, at the same tolerances.
 * Skipped, saying why, where there is no CUDA backend or no GPU.
 */
@Tag("gpu")
class EmbeddingKernelOnGpuTest extends EmbeddingKernelTest {
    @BeforeAll
    static void needsGpu() {
        OnGpu.require("EmbeddingKernelOnGpuTest");
    }

    @Override
    KernelCheck check(DType t) {
        return KernelCheck.on(OnGpu.device(), t);
    }

    @Override
    Device target() {
        return OnGpu.device();
    }
}
