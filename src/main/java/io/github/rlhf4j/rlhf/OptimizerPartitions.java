package io.github.rlhf4j.rlhf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.model.ModelFormatException;
import io.github.rlhf4j.model.Safetensors;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A checkpoint's AdamW moments, whole ({@code optimizer/<model>.safetensors}) or partitioned over ZeRO ranks
 * ({@code optimizer/<model>.rank-<r>-of-<N>.safetensors}), and the map between the two.
 *
 * <p>The map rests on one coordinate that every layout shares. A store's {@link ParameterStore.Layout} pads its flat
 * buffers for ZeRO: at the end for stage 1, and at stages 2 and 3 between layer groups as well, so the flat offset of
 * a parameter depends on the world size and the stage. Within an entry nothing moves (each parameter is padded to
 * {@link ParameterStore#ALIGN} in every layout), so each trained element has one <em>single-process offset</em>:
 * where one process's default layout puts it. A whole file holds the moments of the single-process AdamW groups
 * (DeepSpeed-Chat's groups of the default layout: what one process writes), so it means the same on any number of
 * ranks; a partition file holds one rank's groups, each inside one single-process group at a recorded offset.
 * Consolidating copies every rank's pieces to their places; a rank resuming from a whole file reads its pieces from
 * theirs ({@link Safetensors#readSlice}), so a consolidated checkpoint resumes on any world size and stage.
 *
 * <p>The manifest's partition map, per optimizer: {@code world_size}, {@code zero_stage}, {@code groups} (the
 * single-process groups as [start, end) single-process offsets) and, per rank, {@code file}, {@code bytes} and
 * {@code ranges} ([start, end, single-process start] of each of its groups, in its own layout). Each partition file
 * repeats its rank, world size and ranges in its metadata, so a manifest that disagrees with the files is caught.
 */
final class OptimizerPartitions {
    static final String FORMAT = "rlhf4j-adamw-partition";
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> MOMENTS = List.of("exp_avg", "exp_avg_sq");

    private OptimizerPartitions() {}

    /** One AdamW group of a rank: flat elements [start, end) of its store's layout, at single-process offset {@code single}. */
    record Piece(long start, long end, long single) {
        long length() {
            return end - start;
        }
    }

    /** One rank's partition as the manifest records it. */
    record Partition(int rank, String file, long bytes, List<Piece> pieces) {}

    /** An optimizer's partition map, read from a manifest and checked against its files. */
    record PartitionMap(String name, Path manifest, int world, int stage, List<long[]> groups,
                        List<Partition> ranks) {}

    /** The file of rank {@code rank}'s partition of optimizer {@code name}, relative to the checkpoint folder. */
    static String partitionFile(String name, int rank, int world) {
        return "optimizer/" + name + ".rank-" + rank + "-of-" + world + ".safetensors";
    }

    static String wholeFile(String name) {
        return "optimizer/" + name + ".safetensors";
    }

    // ---- coordinates ---------------------------------------------------------------------------------------------

    /** Where each element of a store's entries sits in the single-process (default) layout, and its AdamW groups. */
    static final class SingleProcess {
        private final long[] offsets, ends, single;
        private final List<long[]> groups = new ArrayList<>();

        SingleProcess(ParameterStore store) {
            List<ParameterStore.Entry> entries = store.entries();
            offsets = new long[entries.size()];
            ends = new long[entries.size()];
            single = new long[entries.size()];
            long at = 0;
            for (int i = 0; i < entries.size(); i++) {
                ParameterStore.Entry e = entries.get(i);
                long padded = (e.numel() + ParameterStore.ALIGN - 1) / ParameterStore.ALIGN * ParameterStore.ALIGN;
                offsets[i] = e.offset();
                ends[i] = e.offset() + padded;
                single[i] = at;
                at += padded;
                // the default layout is the one this class mirrors: if it ever packs otherwise, fail loudly here
                if (store.layout().equals(ParameterStore.Layout.DEFAULT) && single[i] != offsets[i])
                    throw new IllegalStateException("parameter " + e.name() + " is at " + e.offset() + " in a default "
                            + "layout, not at " + single[i] + " as OptimizerPartitions assumes");
            }
            long[] last = null;
            boolean lastDecay = false, lastOwn = false;
            for (ParameterStore.Range r : AdamW.dsChatRanges(store)) {
                Piece p = piece(r.start(), r.end());
                // a ZeRO layout cuts a group at a layer's padding; one process's group runs on across it
                if (last != null && last[1] == p.single() && lastDecay == r.decay() && lastOwn == r.ownLr()) {
                    last[1] = p.single() + p.length();
                } else {
                    last = new long[] {p.single(), p.single() + p.length()};
                    groups.add(last);
                }
                lastDecay = r.decay();
                lastOwn = r.ownLr();
            }
        }

        /** The single-process offset of flat element {@code flat} (inside some entry's padded span). */
        long toSingle(long flat) {
            int lo = 0, hi = offsets.length - 1, at = -1;
            while (lo <= hi) {
                int mid = (lo + hi) >>> 1;
                if (offsets[mid] <= flat) {
                    at = mid;
                    lo = mid + 1;
                } else {
                    hi = mid - 1;
                }
            }
            if (at < 0 || flat >= ends[at])
                throw new IllegalStateException("flat element " + flat + " is padding between groups, not a parameter's");
            return single[at] + (flat - offsets[at]);
        }

        /** Flat elements [start, end) (no layout padding inside) as a piece. */
        Piece piece(long start, long end) {
            long s = toSingle(start);
            if (toSingle(end - 1) != s + (end - 1 - start))
                throw new IllegalStateException("flat range [" + start + ", " + end + ") spans padding between groups");
            return new Piece(start, end, s);
        }

        /** The single-process AdamW groups, [start, end) in single-process offsets. */
        List<long[]> groups() {
            return groups;
        }

        /** The index of the group holding single-process elements [single, single + length), or -1. */
        int groupOf(long single, long length) {
            for (int g = 0; g < groups.size(); g++)
                if (groups.get(g)[0] <= single && single + length <= groups.get(g)[1]) return g;
            return -1;
        }
    }

    /** {@code opt}'s AdamW groups (this rank's) as pieces. */
    static List<Piece> pieces(Optimized opt, SingleProcess sp) {
        List<ParameterStore.Range> ranges = opt.optimizerRanges();
        if (ranges.size() != opt.adamw().groups().size())
            throw new IllegalStateException("the optimizer has " + opt.adamw().groups().size() + " AdamW groups but "
                    + ranges.size() + " ranges");
        List<Piece> out = new ArrayList<>();
        for (ParameterStore.Range r : ranges) out.add(sp.piece(r.start(), r.end()));
        return out;
    }

    // ---- writing -------------------------------------------------------------------------------------------------

    /** This rank's partition of {@code opt}: its groups' moments, with its rank, world size and ranges in the metadata. */
    static void writePartition(Path file, Optimized opt, int rank, int world) throws IOException {
        List<Piece> pieces = pieces(opt, new SingleProcess(opt.store()));
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        for (int i = 0; i < pieces.size(); i++) {
            Tensor[] mv = opt.adamw().moments(i);
            tensors.put("exp_avg." + i, mv[0]);
            tensors.put("exp_avg_sq." + i, mv[1]);
        }
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", FORMAT);
        meta.put("rank", Integer.toString(rank));
        meta.put("world_size", Integer.toString(world));
        meta.put("zero_stage", Integer.toString(opt.zeroStage()));
        meta.put("ranges", JSON.writeValueAsString(rangesJson(pieces)));
        Files.createDirectories(file.getParent());
        Safetensors.write(file, tensors, DType.F32, meta); // a temp file renamed into place
    }

    /**
     * The partition map of optimizer {@code name} once every rank has written its file into {@code dir}: the ranges
     * each file's metadata records, its size, and the single-process groups of {@code opt}'s store.
     */
    static ObjectNode describe(Path dir, String name, Optimized opt) {
        int world = opt.communicator().worldSize();
        ObjectNode n = JSON.createObjectNode();
        n.put("world_size", world);
        n.put("zero_stage", opt.zeroStage());
        ArrayNode groups = n.putArray("groups");
        for (long[] g : new SingleProcess(opt.store()).groups()) groups.addArray().add(g[0]).add(g[1]);
        ArrayNode ranks = n.putArray("ranks");
        for (int r = 0; r < world; r++) {
            String rel = partitionFile(name, r, world);
            Path f = dir.resolve(rel);
            if (!Files.isRegularFile(f))
                throw new IllegalStateException(f + ": rank " + r + " wrote its optimizer partition, but rank 0 does not "
                        + "see it: the checkpoint folder must be on a file system that every rank shares");
            try (Safetensors st = Safetensors.open(f)) {
                ObjectNode one = ranks.addObject();
                one.put("rank", r);
                one.put("file", rel);
                one.put("bytes", Files.size(f));
                one.set("ranges", JSON.readTree(st.metadata().get("ranges")));
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + f + ": " + e.getMessage(), e);
            }
        }
        return n;
    }

    private static ArrayNode rangesJson(List<Piece> pieces) {
        ArrayNode a = JSON.createArrayNode();
        for (Piece p : pieces) a.addArray().add(p.start()).add(p.end()).add(p.single());
        return a;
    }

    // ---- reading and checking ------------------------------------------------------------------------------------

    /**
     * Reads optimizer {@code name}'s partition map from a manifest and checks it against the files in {@code dir}:
     * every rank's file there with the recorded size, its metadata naming the same rank, world size and ranges, its
     * tensors of the ranges' lengths, and the ranks' pieces tiling the single-process groups exactly.
     *
     * @throws Checkpoint.DamagedException naming the file (or the manifest) at fault
     */
    static PartitionMap read(Path dir, Path manifest, String name, JsonNode n) {
        String where = manifest + ": optimizer_partitions." + name;
        for (String k : List.of("world_size", "zero_stage", "groups", "ranks"))
            if (!n.has(k)) throw new Checkpoint.DamagedException(where + ": no '" + k + "' field");
        int world = n.get("world_size").asInt(), stage = n.get("zero_stage").asInt();
        if (world < 2 || stage < 1 || stage > 3)
            throw new Checkpoint.DamagedException(where + ": world size " + world + " and ZeRO stage " + stage
                    + " are not those of a partitioned optimizer");
        List<long[]> groups = new ArrayList<>();
        for (JsonNode g : n.get("groups")) {
            if (!g.isArray() || g.size() != 2 || g.get(0).asLong() >= g.get(1).asLong() || g.get(0).asLong() < 0)
                throw new Checkpoint.DamagedException(where + ": group " + g + " is not [start, end)");
            groups.add(new long[] {g.get(0).asLong(), g.get(1).asLong()});
        }
        JsonNode ranks = n.get("ranks");
        if (!ranks.isArray() || ranks.size() != world)
            throw new Checkpoint.DamagedException(where + ": " + ranks.size() + " ranks listed for a world of " + world);
        List<Partition> parts = new ArrayList<>();
        for (int r = 0; r < world; r++) {
            JsonNode one = ranks.get(r);
            String file = partitionFile(name, r, world);
            if (one.path("rank").asInt(-1) != r || !file.equals(one.path("file").asText()))
                throw new Checkpoint.DamagedException(where + ": entry " + r + " is " + one + ", not rank " + r
                        + "'s " + file);
            List<Piece> pieces = pieces(one.get("ranges"), where + ": rank " + r);
            Path f = dir.resolve(file);
            long size;
            try {
                size = Files.size(f);
            } catch (IOException e) {
                throw new Checkpoint.DamagedException(f + " is missing (rank " + r + "'s partition of the optimizer "
                        + "state of '" + name + "'; every rank's file is needed)");
            }
            long bytes = one.path("bytes").asLong(-1);
            if (size != bytes)
                throw new Checkpoint.DamagedException(f + ": " + size + " bytes; the manifest " + manifest + " says "
                        + bytes);
            checkFile(f, name, r, world, stage, pieces);
            parts.add(new Partition(r, file, bytes, pieces));
        }
        checkTiling(where, groups, parts);
        return new PartitionMap(name, manifest, world, stage, groups, parts);
    }

    /** A partition file's metadata and tensors against what the manifest says of it. */
    private static void checkFile(Path f, String name, int rank, int world, int stage, List<Piece> pieces) {
        try (Safetensors st = Safetensors.open(f)) {
            Map<String, String> m = st.metadata();
            String head = m.get("ranges");
            List<Piece> inFile;
            try {
                inFile = head == null ? null : pieces(JSON.readTree(head), f.toString());
            } catch (IOException e) {
                throw new Checkpoint.DamagedException(f + ": unreadable ranges in its metadata: " + e.getMessage());
            }
            if (!FORMAT.equals(m.get("format")) || !Integer.toString(rank).equals(m.get("rank"))
                    || !Integer.toString(world).equals(m.get("world_size"))
                    || !Integer.toString(stage).equals(m.get("zero_stage")))
                throw new Checkpoint.DamagedException(f + ": its metadata says rank " + m.get("rank") + " of "
                        + m.get("world_size") + " at ZeRO stage " + m.get("zero_stage") + "; the manifest says rank "
                        + rank + " of " + world + " at stage " + stage);
            if (!pieces.equals(inFile))
                throw new Checkpoint.DamagedException(f + ": holds the ranges " + head + "; the manifest says "
                        + rangesJson(pieces) + " (the manifest disagrees with the file)");
            if (st.entries().size() != 2 * pieces.size())
                throw new Checkpoint.DamagedException(f + ": " + st.entries().size() + " tensors for "
                        + pieces.size() + " ranges");
            for (int i = 0; i < pieces.size(); i++)
                for (String mo : MOMENTS) {
                    Safetensors.Entry t = st.entries().get(mo + "." + i);
                    if (t == null) throw new Checkpoint.DamagedException(f + ": no tensor '" + mo + "." + i + "'");
                    if (t.numel() != pieces.get(i).length() || !t.dtype().equals("F32"))
                        throw new Checkpoint.DamagedException(f + ": tensor '" + mo + "." + i + "' has " + t.numel()
                                + " " + t.dtype() + " values; its range has " + pieces.get(i).length());
                }
        } catch (ModelFormatException e) {
            throw new Checkpoint.DamagedException(e.getMessage());
        }
    }

    /** Every element of every group in exactly one rank's piece, and no piece outside the groups. */
    private static void checkTiling(String where, List<long[]> groups, List<Partition> parts) {
        List<long[]> spans = new ArrayList<>();
        for (Partition p : parts)
            for (Piece q : p.pieces()) spans.add(new long[] {q.single(), q.single() + q.length(), p.rank()});
        spans.sort(Comparator.comparingLong(s -> s[0]));
        int k = 0;
        for (long[] g : groups) {
            long at = g[0];
            while (at < g[1]) {
                if (k >= spans.size() || spans.get(k)[0] != at)
                    throw new Checkpoint.DamagedException(where + ": no rank holds single-process element " + at
                            + " (the partitions do not tile group [" + g[0] + ", " + g[1] + "))");
                at = spans.get(k++)[1];
            }
            if (at != g[1])
                throw new Checkpoint.DamagedException(where + ": rank " + spans.get(k - 1)[2] + "'s range ends at " + at
                        + ", past group [" + g[0] + ", " + g[1] + ")");
        }
        if (k != spans.size())
            throw new Checkpoint.DamagedException(where + ": rank " + spans.get(k)[2] + " holds elements from "
                    + spans.get(k)[0] + " that no group has");
    }

    private static List<Piece> pieces(JsonNode a, String where) {
        if (a == null || !a.isArray()) throw new Checkpoint.DamagedException(where + ": no ranges");
        List<Piece> out = new ArrayList<>();
        for (JsonNode r : a) {
            if (!r.isArray() || r.size() != 3)
                throw new Checkpoint.DamagedException(where + ": range " + r + " is not [start, end, single_start]");
            long s = r.get(0).asLong(), e = r.get(1).asLong(), w = r.get(2).asLong();
            if (s < 0 || e <= s || w < 0)
                throw new Checkpoint.DamagedException(where + ": range " + r + " is empty or negative");
            out.add(new Piece(s, e, w));
        }
        return out;
    }

    // ---- against a live optimizer --------------------------------------------------------------------------------

    /**
     * Checks that {@code opt} can take its state from this map: the same world size and stage (else an
     * {@link IllegalArgumentException} telling the user to consolidate), the same single-process groups, and this
     * rank's own ranges.
     */
    static void requireFits(PartitionMap m, Optimized opt, Path checkpoint) {
        int world = opt.communicator() == null ? 1 : opt.communicator().worldSize();
        if (world != m.world() || opt.zeroStage() != m.stage())
            throw new IllegalArgumentException(m.manifest() + ": the optimizer state of '" + m.name() + "' is "
                    + "partitioned over " + m.world() + " ranks at ZeRO stage " + m.stage() + ", and this run has "
                    + world + (world == 1 ? " process" : " ranks at ZeRO stage " + opt.zeroStage()) + ". Resume with "
                    + m.world() + " ranks at ZeRO stage " + m.stage() + ", or make it a single-process checkpoint "
                    + "that resumes on any number of ranks: bin/rlhf4j consolidate " + checkpoint);
        SingleProcess sp = new SingleProcess(opt.store());
        if (!sameGroups(sp.groups(), m.groups()))
            throw new Checkpoint.DamagedException(m.manifest() + ": the optimizer groups of '" + m.name() + "' are not "
                    + "this model's (another model or LoRA setting?)");
        Partition mine = m.ranks().get(opt.communicator().rank());
        if (!mine.pieces().equals(pieces(opt, sp)))
            throw new Checkpoint.DamagedException(checkpoint.resolve(mine.file()) + ": holds ranges "
                    + rangesJson(mine.pieces()) + "; rank " + mine.rank() + " of this run has "
                    + rangesJson(pieces(opt, sp)));
    }

    /** Restores this rank's moments from its own partition file. */
    static void loadPartition(PartitionMap m, Optimized opt, Path checkpoint) {
        Partition mine = m.ranks().get(opt.communicator().rank());
        try (Safetensors st = Safetensors.open(checkpoint.resolve(mine.file()))) {
            for (int i = 0; i < mine.pieces().size(); i++) {
                Tensor[] mv = opt.adamw().moments(i);
                st.readFlat("exp_avg." + i, mv[0]);
                st.readFlat("exp_avg_sq." + i, mv[1]);
            }
        }
    }

    /**
     * Checks that a whole file holds both moments of every single-process group of {@code opt}'s store at its
     * length (whatever this rank's share of them).
     */
    static void verifyWhole(Path file, Optimized opt) {
        SingleProcess sp = new SingleProcess(opt.store());
        List<long[]> groups = sp.groups();
        try (Safetensors st = Safetensors.open(file)) {
            for (int g = 0; g < groups.size(); g++)
                for (String mo : MOMENTS) {
                    Safetensors.Entry t = st.entries().get(mo + "." + g);
                    long n = groups.get(g)[1] - groups.get(g)[0];
                    if (t == null) throw new Checkpoint.DamagedException(st.file() + ": no tensor '" + mo + "." + g + "'");
                    if (t.numel() != n || !t.dtype().equals("F32"))
                        throw new Checkpoint.DamagedException(st.file() + ": tensor '" + mo + "." + g + "' has "
                                + t.numel() + " " + t.dtype() + " values; group " + g + " has " + n);
                }
        } catch (ModelFormatException e) {
            throw new Checkpoint.DamagedException(e.getMessage());
        }
        pieces(opt, sp).forEach(p -> {
            if (sp.groupOf(p.single(), p.length()) < 0)
                throw new IllegalStateException("range " + p + " lies in no single-process group");
        });
    }

    /** Restores {@code opt}'s moments from a whole file: each of its groups from its place in a single-process group. */
    static void loadWhole(Path file, Optimized opt) {
        SingleProcess sp = new SingleProcess(opt.store());
        List<Piece> pieces = pieces(opt, sp);
        try (Safetensors st = Safetensors.open(file)) {
            for (int i = 0; i < pieces.size(); i++) {
                Piece p = pieces.get(i);
                int g = sp.groupOf(p.single(), p.length());
                long at = p.single() - sp.groups().get(g)[0];
                Tensor[] mv = opt.adamw().moments(i);
                st.readSlice("exp_avg." + g, at, mv[0]);
                st.readSlice("exp_avg_sq." + g, at, mv[1]);
            }
        }
    }

    private static boolean sameGroups(List<long[]> a, List<long[]> b) {
        if (a.size() != b.size()) return false;
        for (int i = 0; i < a.size(); i++)
            if (a.get(i)[0] != b.get(i)[0] || a.get(i)[1] != b.get(i)[1]) return false;
        return true;
    }

    // ---- consolidating -------------------------------------------------------------------------------------------

    /**
     * Writes the whole file of a partition map: each single-process group's moments assembled from the ranks'
     * pieces, one group in memory at a time.
     */
    static void writeWhole(Path out, PartitionMap m, Path checkpoint) throws IOException {
        List<Safetensors> files = new ArrayList<>();
        try (Scope s = Scope.open(Device.cpu()); Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (Partition p : m.ranks()) files.add(Safetensors.open(checkpoint.resolve(p.file())));
            // the writer takes each tensor's shape from the map and its bytes from the function below: a stride-0
            // view stands in for a group until its turn, so only one whole group is ever allocated
            Tensor[] one = {s.zeros(DType.F32, 1), s.zeros(DType.F32, 1, 1)}; // for 1-d moments and rows past 2^31
            Map<String, Tensor> shapes = new LinkedHashMap<>();
            Map<String, Integer> groupOf = new LinkedHashMap<>();
            for (int g = 0; g < m.groups().size(); g++)
                for (String mo : MOMENTS) {
                    int[] shape = Tensor.flatShape(m.groups().get(g)[1] - m.groups().get(g)[0]);
                    shapes.put(mo + "." + g, one[shape.length - 1].expand(shape));
                    groupOf.put(mo + "." + g, g);
                }
            Files.createDirectories(out.getParent());
            Safetensors.write(out, shapes, DType.F32, Map.of("format", "rlhf4j-adamw"), (name, t) -> {
                int g = groupOf.get(name);
                String moment = name.substring(0, name.lastIndexOf('.'));
                long start = m.groups().get(g)[0], end = m.groups().get(g)[1];
                Tensor whole = Scope.current().flatZeros(DType.F32, end - start);
                for (Partition p : m.ranks())
                    for (int i = 0; i < p.pieces().size(); i++) {
                        Piece q = p.pieces().get(i);
                        if (q.single() < start || q.single() >= end) continue;
                        long at = q.single() - start;
                        files.get(p.rank()).readFlat(moment + "." + i, whole.flatRange(at, at + q.length()));
                    }
                return whole;
            });
        } finally {
            for (Safetensors f : files) f.close();
        }
    }
}
