package io.github.rlhf4j.data;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.BitSet;

/**
 * DeepSpeed-Chat's {@code get_raw_dataset_split_index}: one shuffled index list per part of a split, cached on disk
 * as {@code <dataset>_seed<seed>_<train|eval|train_eval>_<split>_<part>.idx} (its {@code .npy} names, with our own
 * small format: magic, the row count it was made for, the indices). A missing, damaged or stale file (made for
 * another row count) makes all parts be computed and written again, each file atomically.
 */
final class SplitIndexCache {
    private SplitIndexCache() {}

    private static final long MAGIC = 0x524C_4846_344A_4958L; // "RLHF4JIX"
    private static final int VERSION = 1;

    /**
     * The index lists of every part of {@code split} over {@code size} rows.
     *
     * @param dir the cache folder, or null for no cache
     */
    static int[][] parts(Path dir, String dataset, long seed, String name, SplitSpec split, int size) {
        Path[] files = new Path[split.parts()];
        if (dir != null) {
            for (int i = 0; i < files.length; i++)
                files[i] = dir.resolve(dataset + "_seed" + seed + "_" + name + "_" + split.text() + "_" + i + ".idx");
            int[][] cached = read(files, size);
            if (cached != null) return cached;
        }
        int[] b = split.boundaries(size);
        int[] shuffled = Shuffle.permutation(seed, size);
        int[][] parts = new int[split.parts()][];
        for (int i = 0; i < parts.length; i++) parts[i] = java.util.Arrays.copyOfRange(shuffled, b[i], b[i + 1]);
        if (dir != null) {
            try {
                Files.createDirectories(dir);
                for (int i = 0; i < parts.length; i++) write(files[i], size, parts[i]);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot write the split index cache in " + dir + ": " + e.getMessage(), e);
            }
        }
        return parts;
    }

    /** The cached parts if all are there, made for {@code size} rows, and together a permutation of them. */
    private static int[][] read(Path[] files, int size) {
        int[][] parts = new int[files.length][];
        BitSet seen = new BitSet(size);
        for (int p = 0; p < files.length; p++) {
            try (DataInputStream in = new DataInputStream(new BufferedInputStream(Files.newInputStream(files[p])))) {
                if (in.readLong() != MAGIC || in.readInt() != VERSION || in.readLong() != size) return null;
                int n = in.readInt();
                if (n < 0 || n > size) return null;
                parts[p] = new int[n];
                for (int i = 0; i < n; i++) {
                    int v = in.readInt();
                    if (v < 0 || v >= size || seen.get(v)) return null;
                    seen.set(v);
                    parts[p][i] = v;
                }
                if (in.read() != -1) return null;
            } catch (NoSuchFileException e) {
                return null;
            } catch (IOException e) { // truncated or unreadable: make it again
                return null;
            }
        }
        return seen.cardinality() == size ? parts : null;
    }

    private static void write(Path file, int size, int[] index) throws IOException {
        Path tmp = Files.createTempFile(file.getParent(), "." + file.getFileName(), ".tmp");
        try {
            try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(Files.newOutputStream(tmp)))) {
                out.writeLong(MAGIC);
                out.writeInt(VERSION);
                out.writeLong(size);
                out.writeInt(index.length);
                for (int v : index) out.writeInt(v);
            }
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
