package io.github.rlhf4j.data;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * Settings DJL's tokenizer binding reads once, when its native library loads; set before the first
 * {@link Tokenizer} so that it works offline and where the home folder is read-only.
 *
 * <p>DJL copies {@code libtokenizers.so} out of its jar into {@code $ENGINE_CACHE_DIR/tokenizers/<version>/}, where
 * {@code ENGINE_CACHE_DIR} defaults to {@code $DJL_CACHE_DIR}, then {@code ~/.djl.ai} (or {@code
 * <java.io.tmpdir>/.djl.ai} when the home folder itself is not writable). A home folder that is writable but holds a
 * read-only {@code .djl.ai} (a shared or baked image) would still fail, so when neither variable is set and that
 * folder can be neither used nor created, the cache moves to {@code <java.io.tmpdir>/rlhf4j-djl-<user>}.
 *
 * <p>On first use DJL also pings the EC2 metadata address for usage telemetry (with 1 s time-outs, so offline it
 * costs up to a few seconds); {@code OPT_OUT_TRACKING=true} turns that off, and is set here unless the environment or
 * a system property already decides it.
 */
final class DjlSetup {
    private DjlSetup() {}

    static final String TRACKING = "OPT_OUT_TRACKING";
    static final String ENGINE_CACHE = "ENGINE_CACHE_DIR";

    static synchronized void prepare() {
        if (System.getenv(TRACKING) == null && System.getProperty(TRACKING) == null)
            System.setProperty(TRACKING, "true");
        if (set("ENGINE_CACHE_DIR") || set("DJL_CACHE_DIR")) return;
        Path home = Path.of(System.getProperty("user.home", "."));
        Path base = Files.isWritable(home) ? home : Path.of(System.getProperty("java.io.tmpdir"));
        Path cache = base.resolve(".djl.ai");
        if (!usable(cache.resolve("tokenizers")))
            System.setProperty(ENGINE_CACHE, fallback().toString());
    }

    /** {@code <java.io.tmpdir>/rlhf4j-djl-<user>}: per user, so one user's files never block another's. */
    static Path fallback() {
        String user = System.getProperty("user.name", "user").replaceAll("[^A-Za-z0-9._-]", "_");
        return Path.of(System.getProperty("java.io.tmpdir"), "rlhf4j-djl-" + user);
    }

    private static boolean set(String name) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty()) v = System.getProperty(name);
        return v != null && !v.isEmpty();
    }

    /** Whether DJL can load from {@code dir}: a library is already there, or the folder can be written or made. */
    static boolean usable(Path dir) {
        if (Files.isDirectory(dir)) {
            if (Files.isWritable(dir)) return true;
            try (Stream<Path> versions = Files.list(dir)) {
                return versions.anyMatch(v -> Files.isRegularFile(v.resolve(System.mapLibraryName("tokenizers"))));
            } catch (IOException e) {
                return false;
            }
        }
        for (Path p = dir.toAbsolutePath().getParent(); p != null; p = p.getParent())
            if (Files.exists(p)) return Files.isDirectory(p) && Files.isWritable(p);
        return false;
    }
}
