package io.github.rlhf4j.kernels;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.rlhf4j.runtime.Backend;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
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
        var cuda = Backend.cuda();
        assumeTrue(cuda.isPresent(), "no CUDA backend in this build (librlhf4j_cuda.so is built when nvcc is "
                + "present): GPU gemm checks skipped");
        assumeTrue(cuda.get().deviceCount() > 0, "CUDA backend loaded but no GPU visible: GPU gemm checks skipped");
        System.out.println("GemmKernelOnGpuTest on " + cuda.get().features());
    }

    @Override
    KernelCheck check(DType dt) {
        return KernelCheck.on(Device.cuda(0), dt);
    }
}
