package io.github.rlhf4j.kernels;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.rlhf4j.runtime.Backend;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;

/**
 * LogprobsKernelTest's cases on a real GPU (CUDA device 0) against the CPU backend, at the same tolerances.
 * Skipped, saying why, where there is no CUDA backend or no GPU.
 */
@Tag("gpu")
class LogprobsKernelOnGpuTest extends LogprobsKernelTest {
    @BeforeAll
    static void needsGpu() {
        var cuda = Backend.cuda();
        assumeTrue(cuda.isPresent(), "no CUDA backend in this build (librlhf4j_cuda.so is built when nvcc is "
                + "present): GPU checks skipped");
        assumeTrue(cuda.get().deviceCount() > 0, "CUDA backend loaded but no GPU visible: GPU checks skipped");
        System.out.println("LogprobsKernelOnGpuTest on " + cuda.get().features());
    }

    @Override
    KernelCheck check(DType t) {
        return KernelCheck.on(Device.cuda(0), t);
    }

    @Override
    Device target() {
        return Device.cuda(0);
    }
}
