package io.github.rlhf4j.runtime;

import java.util.Optional;

/**
 * A loaded backend library: {@code librlhf4j_cpu.so} or {@code librlhf4j_cuda.so}, both implementing rlhf4j.h. Each
 * is opened once per JVM; {@link Device}s are opened on it.
 */
public final class Backend {
    public static final String CPU = "rlhf4j_cpu";
    public static final String CUDA = "rlhf4j_cuda";

    private static volatile Backend cpu;
    private static volatile Optional<Backend> cuda;

    private final String library;
    private final Abi abi;

    private Backend(String library) {
        this.library = library;
        this.abi = new Abi(library.substring("rlhf4j_".length()), NativeLoader.open(library));
    }

    /** The CPU backend; every rlhf4j build has it. */
    public static Backend cpu() {
        Backend b = cpu;
        if (b == null) {
            synchronized (Backend.class) {
                if ((b = cpu) == null) cpu = b = new Backend(CPU);
            }
        }
        return b;
    }

    /** The CUDA backend, when this build has {@code librlhf4j_cuda.so} (it may still see no GPU: check deviceCount). */
    public static Optional<Backend> cuda() {
        Optional<Backend> b = cuda;
        if (b == null) {
            synchronized (Backend.class) {
                if ((b = cuda) == null)
                    cuda = b = NativeLoader.find(CUDA).isPresent() ? Optional.of(new Backend(CUDA)) : Optional.empty();
            }
        }
        return b;
    }

    /** "cpu" or "cuda", as the library names itself. */
    public String name() {
        return abi.backendName();
    }

    /** What the library dispatches to: instruction set, CPU flags, threads (or GPU model). */
    public String features() {
        return abi.backendFeatures();
    }

    public int deviceCount() {
        return abi.deviceCount();
    }

    public Abi abi() {
        return abi;
    }

    @Override
    public String toString() {
        return library;
    }
}
