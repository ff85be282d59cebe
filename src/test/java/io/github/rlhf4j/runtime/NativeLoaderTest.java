package io.github.rlhf4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.OutputStream;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NativeLoaderTest {
    @Test
    void aLibraryInsideAJarIsExtractedOnceAndReused(@TempDir Path dir) throws Exception {
        byte[] bytes = new byte[10_000];
        new java.util.Random(1).nextBytes(bytes);
        Path jar = dir.resolve("app.jar");
        String entry = "native/" + NativeLoader.platform() + "/" + NativeLoader.fileName("rlhf4j_loadertest");
        try (OutputStream out = Files.newOutputStream(jar); JarOutputStream j = new JarOutputStream(out)) {
            j.putNextEntry(new JarEntry(entry));
            j.write(bytes);
            j.closeEntry();
        }
        try (URLClassLoader loader = new URLClassLoader(new URL[] {jar.toUri().toURL()}, null)) {
            Optional<Path> first = NativeLoader.find("rlhf4j_loadertest", loader);
            assertTrue(first.isPresent());
            assertTrue(first.get().startsWith(Path.of(System.getProperty("java.io.tmpdir"))), first.get().toString());
            assertArrayEquals(bytes, Files.readAllBytes(first.get()));
            long modified = Files.getLastModifiedTime(first.get()).toMillis();
            Optional<Path> second = NativeLoader.find("rlhf4j_loadertest", loader);
            assertEquals(first, second);
            assertEquals(modified, Files.getLastModifiedTime(second.get()).toMillis(), "extracted again");
            Files.delete(first.get());
        }
    }

    @Test
    void aMissingLibraryIsAbsentAndOpeningItExplainsWhereItLooked() {
        assertTrue(NativeLoader.find("rlhf4j_no_such_library").isEmpty());
        UnsatisfiedLinkError e = org.junit.jupiter.api.Assertions.assertThrows(UnsatisfiedLinkError.class,
                () -> NativeLoader.open("rlhf4j_no_such_library"));
        assertTrue(e.getMessage().contains("native/" + NativeLoader.platform()) && e.getMessage().contains("mvn"),
                e.getMessage());
    }
}
