package io.github.rlhf4j.kernels;

import io.github.rlhf4j.runtime.DType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;

/**
 * GemmKernelTest's cases on a real GPU (CUDA device 0) against the CPU backend: through cuBLASLt where it is found
 * (and for the shapes its heuristic accepts), else through our own kernels; bench/gpu/run.sh runs this class a
 * second time with RLHF4J_CUBLASLT=off, so both paths are checked on the device. Skipped, saying why, where there is
 * no CUDA backend or no GPU.
 */
@Tag("gpu")
class GemmKernelOnGpuTest extends GemmKernelTest {
    @BeforeAll
    static void needsGpu() {
        OnGpu.require("GemmKernelOnGpuTest");
    }

    @Override
    KernelCheck check(DType dt) {
        return KernelCheck.on(OnGpu.device(), dt);
    }
}
