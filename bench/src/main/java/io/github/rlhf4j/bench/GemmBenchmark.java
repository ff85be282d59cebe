package io.github.rlhf4j.bench;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import io.github.rlhf4j.runtime.Abi;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * fp32 C = A . B, square n x n, row-major, through rlhf4j's CPU backend ({@code rlhf4j_gemm}) and through OpenBLAS
 * ({@code cblas_sgemm} from {@code libopenblas.so.0}, opened at run time by soname), both called through FFM from the
 * same JVM on the same buffers with the same thread count.
 *
 * <p>Floor: 2 n^3 FLOPs; at n = 1024 that is 2.15 GFLOP, so 10 ms is 215 GFLOP/s. The peer's figure, measured in the
 * same run, is the practical ceiling of this machine.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class GemmBenchmark {
    @Param({"rlhf4j", "openblas"})
    public String impl;

    @Param({"256", "1024"})
    public int n;

    /** Threads for both implementations (OpenMP for rlhf4j, OpenBLAS's own pool for the peer). */
    @Param({"2"})
    public int threads;

    private Device device;
    private Abi abi;
    private long a, b, c;
    private MethodHandle sgemm;

    private static final int CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111;

    @Setup(Level.Trial)
    public void setup() throws Throwable {
        device = Device.cpu();
        abi = device.abi();
        device.setNumThreads(threads);
        long bytes = (long) n * n * 4;
        a = abi.malloc(device.handle(), bytes);
        b = abi.malloc(device.handle(), bytes);
        c = abi.malloc(device.handle(), bytes);
        abi.fillRandom(device.stream(), DType.F32.code, (long) n * n, a, 1, 0, 1, 1, 0);
        abi.fillRandom(device.stream(), DType.F32.code, (long) n * n, b, 1, 0, 1, 2, 0);
        if (impl.equals("openblas")) {
            SymbolLookup blas = SymbolLookup.libraryLookup("libopenblas.so.0", Arena.global());
            Linker linker = Linker.nativeLinker();
            MethodHandle setThreads = linker.downcallHandle(blas.find("openblas_set_num_threads").orElseThrow(),
                    FunctionDescriptor.ofVoid(JAVA_INT));
            setThreads.invokeExact(threads);
            // void cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
            sgemm = linker.downcallHandle(blas.find("cblas_sgemm").orElseThrow(), FunctionDescriptor.ofVoid(
                    JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT, ADDRESS, JAVA_INT,
                    ADDRESS, JAVA_INT, JAVA_FLOAT, ADDRESS, JAVA_INT));
        }
    }

    @Benchmark
    public void gemm() throws Throwable {
        if (sgemm == null) {
            abi.gemm(device.stream(), 0, 0, n, n, n, 1.0, a, n, 0, b, n, 0, DType.F32.code, 0.0, c, n, 0,
                    DType.F32.code, 1, 0L);
        } else {
            sgemm.invokeExact(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS, n, n, n, 1.0f,
                    MemorySegment.ofAddress(a), n, MemorySegment.ofAddress(b), n, 0.0f, MemorySegment.ofAddress(c), n);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        abi.free(device.handle(), a);
        abi.free(device.handle(), b);
        abi.free(device.handle(), c);
    }
}
