package io.github.rlhf4j.kernels;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.github.rlhf4j.runtime.Backend;
import io.github.rlhf4j.runtime.Device;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The CUDA backend's own kernel sources compiled for the CPU ({@code librlhf4j_cuda_emu.so}, kernels/emu): the same
 * ABI as {@code librlhf4j_cuda.so}, with device memory in host memory behind guard pages, and each launch run
 * synchronously with a block's threads as fibers. Kernel tests open it as a second backend beside the CPU one.
 *
 * <p>Where the library is looked for: the folder in the system property {@code rlhf4j.emu.dir}, else
 * {@code ${rlhf4j.buildDir}/kernels}, else {@code target/kernels}. When it is not there the tests fail (they do not
 * skip), with a message saying how to build it.
 */
public final class Emulated {
    /** Lanes of a block run in order between barriers. */
    public static final int IN_ORDER = 0;
    /** Lanes of a block run in reverse order between barriers: with IN_ORDER, exposes missing barriers and races. */
    public static final int REVERSED = 1;
    /** Lanes shuffled with a seed. */
    public static final int SHUFFLED = 2;

    public static final String LIBRARY = "rlhf4j_cuda_emu";

    private static volatile Emulated instance;

    private final Path file;
    private final Backend backend;
    private final Device device;
    private final MethodHandle setSchedule, getSchedule;

    private Emulated(Path file) {
        this.file = file;
        this.backend = Backend.load(LIBRARY, file);
        this.device = Device.open(backend, "cuda-emu", 0);
        SymbolLookup lookup = SymbolLookup.libraryLookup(file, Arena.global());
        Linker linker = Linker.nativeLinker();
        this.setSchedule = linker.downcallHandle(lookup.find("rlhf4j_emu_set_schedule").orElseThrow(
                () -> new UnsatisfiedLinkError(file + " lacks rlhf4j_emu_set_schedule: not an emulated build")),
                FunctionDescriptor.ofVoid(JAVA_INT, JAVA_LONG));
        this.getSchedule = linker.downcallHandle(lookup.find("rlhf4j_emu_get_schedule").orElseThrow(
                () -> new UnsatisfiedLinkError(file + " lacks rlhf4j_emu_get_schedule: not an emulated build")),
                FunctionDescriptor.of(JAVA_INT));
    }

    /** The folder the library is looked for in (see the class comment). */
    public static Path folder() {
        String dir = System.getProperty("rlhf4j.emu.dir");
        if (dir != null && !dir.isBlank()) return Path.of(dir);
        String build = System.getProperty("rlhf4j.buildDir");
        if (build != null && !build.isBlank()) return Path.of(build, "kernels");
        return Path.of("target", "kernels");
    }

    /** The loaded library, or an AssertionError (a test failure) that says how to build it. */
    public static Emulated get() {
        Emulated e = instance;
        if (e == null) {
            synchronized (Emulated.class) {
                if ((e = instance) == null) {
                    Path file = folder().resolve(System.mapLibraryName(LIBRARY)).toAbsolutePath();
                    if (!Files.isRegularFile(file))
                        throw new AssertionError("the emulated CUDA backend " + file + " is missing: build it with "
                                + "`make -C kernels emu OUT=" + file.getParent() + "` (needs g++ with OpenMP), or "
                                + "point -Drlhf4j.emu.dir at the folder that holds " + file.getFileName());
                    instance = e = new Emulated(file);
                }
            }
        }
        return e;
    }

    public Path file() {
        return file;
    }

    public Backend backend() {
        return backend;
    }

    /** Device 0 of the emulated backend, with its default stream. */
    public Device device() {
        return device;
    }

    /** How the lanes of each block are ordered between barriers for the launches that follow (on every thread). */
    public void setSchedule(int mode, long seed) {
        try {
            setSchedule.invokeExact(mode, seed);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    public int schedule() {
        try {
            return (int) getSchedule.invokeExact();
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
