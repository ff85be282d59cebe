package io.github.rlhf4j.runtime;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * Finds a backend library ({@code librlhf4j_cpu.so}, {@code librlhf4j_cuda.so}) and opens it.
 *
 * <p>Where it looks, in order: the folder named by the system property {@code rlhf4j.native.dir} or the environment
 * variable {@code RLHF4J_NATIVE_DIR}; then the jar's {@code native/<os>-<arch>/} folder. A library inside a jar is
 * extracted once to {@code <tmpdir>/rlhf4j-<version>-<hash>/} (write to a temp name, then rename, so two JVMs
 * starting at once never see a half-written file), the sqlite-jdbc / zstd-jni convention.
 */
public final class NativeLoader {
    private NativeLoader() {}

    /** {@code linux-x86_64}, {@code linux-aarch64}, ...: the folder name inside the jar. */
    public static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String o = os.contains("linux") ? "linux" : os.contains("mac") ? "macos" : os.contains("win") ? "windows" : os;
        String a = switch (arch) {
            case "amd64", "x86_64" -> "x86_64";
            case "aarch64", "arm64" -> "aarch64";
            default -> arch;
        };
        return o + "-" + a;
    }

    /** The file name of a library, e.g. {@code librlhf4j_cpu.so} for {@code rlhf4j_cpu}. */
    public static String fileName(String name) {
        return System.mapLibraryName(name);
    }

    /**
     * The path of library {@code name}, extracting it from the jar if needed, or empty when no copy exists anywhere
     * (a CUDA library on a build without nvcc, say).
     */
    public static Optional<Path> find(String name) {
        return find(name, NativeLoader.class.getClassLoader());
    }

    static Optional<Path> find(String name, ClassLoader loader) {
        String file = fileName(name);
        for (String dir : overrideDirs()) {
            Path p = Path.of(dir, file);
            if (Files.isRegularFile(p)) return Optional.of(p);
        }
        String resource = "native/" + platform() + "/" + file;
        URL url = loader.getResource(resource);
        if (url == null) return Optional.empty();
        if ("file".equals(url.getProtocol())) {
            try {
                return Optional.of(Path.of(url.toURI()));
            } catch (URISyntaxException e) {
                throw new IllegalStateException("bad resource URL " + url, e);
            }
        }
        return Optional.of(extract(url, file));
    }

    /** Opens library {@code name} for the life of the JVM, or explains where it looked. */
    public static SymbolLookup open(String name) {
        Path path = find(name).orElseThrow(() -> new UnsatisfiedLinkError(
                "rlhf4j: no " + fileName(name) + " for platform " + platform() + ": looked in "
                        + String.join(", ", overrideDirs()) + (overrideDirs().isEmpty() ? "" : " and ")
                        + "the class path at native/" + platform() + "/ (build it with `mvn -B package`, or point "
                        + "-Drlhf4j.native.dir / RLHF4J_NATIVE_DIR at a folder holding it)"));
        try {
            return SymbolLookup.libraryLookup(path, Arena.global());
        } catch (IllegalArgumentException e) {
            throw new UnsatisfiedLinkError("rlhf4j: cannot open " + path + ": " + e.getMessage());
        }
    }

    private static List<String> overrideDirs() {
        List<String> dirs = new ArrayList<>();
        String prop = System.getProperty("rlhf4j.native.dir");
        if (prop != null && !prop.isBlank()) dirs.add(prop);
        String env = System.getenv("RLHF4J_NATIVE_DIR");
        if (env != null && !env.isBlank()) dirs.add(env);
        return dirs;
    }

    private static Path extract(URL url, String file) {
        try {
            byte[] bytes;
            try (InputStream in = url.openStream()) {
                bytes = in.readAllBytes();
            }
            String hash = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes), 0, 8);
            String version = Optional.ofNullable(NativeLoader.class.getPackage().getImplementationVersion()).orElse("dev");
            Path dir = Path.of(System.getProperty("java.io.tmpdir"), "rlhf4j-" + version + "-" + hash);
            Path target = dir.resolve(file);
            if (Files.isRegularFile(target) && Files.size(target) == bytes.length) return target;
            Files.createDirectories(dir);
            Path tmp = Files.createTempFile(dir, file, ".tmp");
            Files.write(tmp, bytes);
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            return target;
        } catch (IOException | NoSuchAlgorithmException e) {
            throw new IllegalStateException("rlhf4j: cannot extract " + url + " to the temp folder", e);
        }
    }

}
