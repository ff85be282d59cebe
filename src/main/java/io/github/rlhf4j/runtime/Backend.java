package io.github.rlhf4j.runtime;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

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
        this(library, NativeLoader.open(library));
    }

    private Backend(String library, SymbolLookup lookup) {
        this.library = library;
        this.abi = new Abi(library.startsWith("rlhf4j_") ? library.substring("rlhf4j_".length()) : library, lookup);
    }

    private static final Map<Path, Backend> LOADED = new ConcurrentHashMap<>();

    /**
     * A backend library opened from an explicit file (once per file for the life of the JVM), for libraries the
     * loader does not look for by itself: the emulated CUDA backend the kernel tests run on the CPU, say.
     *
     * @param library its name in messages, e.g. {@code rlhf4j_cuda_emu}
     * @throws UnsatisfiedLinkError if the file is missing or does not implement this ABI version
     */
    public static Backend load(String library, Path file) {
        Path key = file.toAbsolutePath().normalize();
        return LOADED.computeIfAbsent(key, k -> {
            if (!Files.isRegularFile(k)) throw new UnsatisfiedLinkError("rlhf4j: no backend library at " + k);
            try {
                return new Backend(library, SymbolLookup.libraryLookup(k, Arena.global()));
            } catch (IllegalArgumentException e) {
                throw new UnsatisfiedLinkError("rlhf4j: cannot open " + k + ": " + e.getMessage());
            }
        });
    }

    /** The CPU backend; every rlhf4j build has it. */
    public static Backend cpu() {
        Backend b = cpu;
        if (b == null) {
            synchronized (Backend.class) {
                if ((b = cpu) == null) {
                    boundOpenMpSpinning();
                    cpu = b = new Backend(CPU);
                }
            }
        }
        return b;
    }

    /**
     * OpenMP worker threads spin between parallel regions before they sleep; libgomp's default (about 300,000 spins)
     * suits a machine that does nothing else, but a spinning worker steals the core the JVM's own thread needs next,
     * and on a busy or small machine a training step then runs many times slower. libgomp reads its spin count once,
     * when it loads, so it is set here, before the CPU backend (and with it libgomp) is loaded: GOMP_SPINCOUNT = 30000
     * unless the user chose OMP_WAIT_POLICY or GOMP_SPINCOUNT (or the system property rlhf4j.gomp.spincount).
     */
    private static void boundOpenMpSpinning() {
        if (System.getenv("OMP_WAIT_POLICY") != null || System.getenv("GOMP_SPINCOUNT") != null) return;
        String spin = System.getProperty("rlhf4j.gomp.spincount", "30000");
        Linker linker = Linker.nativeLinker();
        var setenv = linker.defaultLookup().find("setenv");
        if (setenv.isEmpty()) return;
        MethodHandle h = linker.downcallHandle(setenv.get(), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
        try (Arena arena = Arena.ofConfined()) {
            int ignored = (int) h.invokeExact(arena.allocateFrom("GOMP_SPINCOUNT"), arena.allocateFrom(spin), 0);
        } catch (Throwable t) {
            // Not fatal: only speed under load depends on it.
        }
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
