package io.github.rlhf4j.rlhf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.Rlhf4j;
import io.github.rlhf4j.dist.Communicator;
import io.github.rlhf4j.dist.ShardedStore;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.model.ModelFormatException;
import io.github.rlhf4j.model.Safetensors;
import io.github.rlhf4j.nn.Lora;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * One checkpoint of a training stage: a folder {@code checkpoint-<step>} holding what a resumed run needs to go on
 * exactly as an uninterrupted one would. The trained models as Hugging Face directories (so a checkpoint's actor
 * loads in transformers as it is), each optimizer's AdamW moments ({@code optimizer/<model>.safetensors}: the flat
 * {@code exp_avg.<group>} and {@code exp_avg_sq.<group>} buffers), small integer arrays
 * ({@code state.safetensors}), the stage's metrics so far ({@code logs/}), and {@code manifest.json}: the format
 * version, the stage, the step, the settings a resumed run must share, the counters and positions (data position,
 * optimizer steps, schedule position, RNG counters), and the size of every tensor file.
 *
 * <p>A model with LoRA adapters ({@link Lora}) is saved as a Hugging Face folder like any other, its adapters fused
 * into their weights; beside it, {@code <model>/lora.safetensors} ({@link #LORA_STATE}) holds the exact state of its
 * LoRA layers, each unfused weight and both adapter matrices under their parameter names, so that a resumed run
 * goes on from the very same parameters (the fused weights cannot be split back exactly).
 *
 * <p>A checkpoint is written into a hidden sibling folder, its manifest last, every file and the folder forced to
 * disk, then renamed into place: a folder named {@code checkpoint-<step>} is complete, or was damaged afterwards,
 * which {@link #open} and the {@code verify} methods detect (no manifest, a file missing or of another size, a
 * tensor missing or of another shape). When the stage has finished, {@code result.json} beside the manifest holds
 * its final figures.
 *
 * <p>Under ZeRO (stage 1 and up on several ranks) no rank holds a whole optimizer: each rank writes its partition,
 * {@code optimizer/<model>.rank-<r>-of-<N>.safetensors}, and the manifest records the world size and the partition
 * map ({@link OptimizerPartitions}: each rank's file, byte size and ranges). Such a checkpoint resumes on the same
 * number of ranks at the same stage, each rank reading its own file; {@link #consolidate} turns it into a
 * single-process checkpoint (whole moments), which resumes on any number of ranks. The model folders are always
 * whole Hugging Face models, written by rank 0 (at stage 3 with the parameters gathered).
 */
public final class Checkpoint {
    /** The manifest's {@code format_version}; a checkpoint of another version is refused. */
    public static final int FORMAT_VERSION = 1;
    public static final String MANIFEST = "manifest.json", RESULT = "result.json";
    /** The file of a model folder that holds its LoRA layers' unfused weights and adapters. */
    public static final String LORA_STATE = "lora.safetensors";
    /** The manifest's map of partitioned optimizers: name -> world size, ZeRO stage, groups, each rank's file. */
    static final String PARTITIONS = "optimizer_partitions";
    private static final String PREFIX = "checkpoint-";
    private static final Pattern NAME = Pattern.compile("checkpoint-(\\d+)");
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Path dir;
    private final JsonNode manifest;
    private final JsonNode result;

    private Checkpoint(Path dir, JsonNode manifest, JsonNode result) {
        this.dir = dir;
        this.manifest = manifest;
        this.result = result;
    }

    /** A checkpoint folder that is incomplete or damaged, named with what is wrong. */
    public static final class DamagedException extends RuntimeException {
        public DamagedException(String message) {
            super(message);
        }
    }

    public Path dir() {
        return dir;
    }

    public String stage() {
        return manifest.get("stage").asText();
    }

    /** The stage's step (optimizer steps of its loop) this checkpoint was taken after. */
    public long step() {
        return manifest.get("step").asLong();
    }

    public long totalSteps() {
        return manifest.get("total_steps").asLong();
    }

    /** The stage's counters and positions, as the stage wrote them. */
    public JsonNode state() {
        return manifest.get("state");
    }

    /** The finished stage's figures ({@code result.json}), or null while the stage was still running. */
    public JsonNode result() {
        return result;
    }

    // ---- listing and reading -------------------------------------------------------------------------------------

    /** The {@code checkpoint-<step>} folders of a stage folder, newest (highest step) first. */
    public static List<Path> list(Path stageDir) {
        if (!Files.isDirectory(stageDir)) return List.of();
        try (Stream<Path> s = Files.list(stageDir)) {
            return s.filter(p -> Files.isDirectory(p) && NAME.matcher(p.getFileName().toString()).matches())
                    .sorted(Comparator.comparingLong(Checkpoint::stepOf).reversed()).toList();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list checkpoints in " + stageDir + ": " + e.getMessage(), e);
        }
    }

    /** The step in a {@code checkpoint-<step>} folder's name. */
    public static long stepOf(Path dir) {
        Matcher m = NAME.matcher(dir.getFileName().toString());
        if (!m.matches()) throw new IllegalArgumentException(dir + " is not named checkpoint-<step>");
        return Long.parseLong(m.group(1));
    }

    /**
     * Reads {@code dir}'s manifest and checks that every file it lists is there with the size it was written with.
     *
     * @throws DamagedException naming the folder and what is missing or wrong
     * @throws IllegalArgumentException for a checkpoint of another format version
     */
    public static Checkpoint open(Path dir) {
        Path m = dir.resolve(MANIFEST);
        if (!Files.isRegularFile(m)) throw new DamagedException(dir + ": no " + MANIFEST + " (incomplete checkpoint)");
        JsonNode manifest;
        try {
            manifest = JSON.readTree(m.toFile());
        } catch (IOException e) {
            throw new DamagedException(m + ": unreadable: " + e.getMessage());
        }
        for (String key : List.of("format_version", "stage", "step", "total_steps", "settings", "state", "files"))
            if (manifest == null || !manifest.has(key)) throw new DamagedException(m + ": no '" + key + "' field");
        int version = manifest.get("format_version").asInt();
        if (version != FORMAT_VERSION)
            throw new IllegalArgumentException(m + ": checkpoint format version " + version + "; this rlhf4j reads "
                    + "version " + FORMAT_VERSION + " (resume with the rlhf4j that wrote it, or start afresh without "
                    + "--resume)");
        if (manifest.get("step").asLong() != stepOf(dir))
            throw new DamagedException(m + ": step " + manifest.get("step").asLong() + " does not match the folder name");
        for (var it = manifest.get("files").properties().iterator(); it.hasNext(); ) {
            var f = it.next();
            Path p = dir.resolve(f.getKey());
            long size;
            try {
                size = Files.size(p);
            } catch (NoSuchFileException e) {
                throw new DamagedException(dir + ": " + f.getKey() + " is missing");
            } catch (IOException e) {
                throw new DamagedException(p + ": unreadable: " + e.getMessage());
            }
            if (size != f.getValue().asLong())
                throw new DamagedException(p + ": " + size + " bytes, written with " + f.getValue().asLong());
        }
        JsonNode result = null;
        Path r = dir.resolve(RESULT);
        if (Files.isRegularFile(r))
            try {
                result = JSON.readTree(r.toFile());
            } catch (IOException e) {
                throw new DamagedException(r + ": unreadable: " + e.getMessage());
            }
        return new Checkpoint(dir, manifest, result);
    }

    /**
     * Refuses to resume when a setting differs from the checkpoint's, naming it (the flag) and both values.
     *
     * @throws IllegalArgumentException naming the first differing setting
     */
    public void requireSettings(Map<String, String> now) {
        JsonNode saved = manifest.get("settings");
        for (var e : now.entrySet()) {
            JsonNode was = saved.get(e.getKey());
            String before = was == null || was.isNull() ? null : was.asText();
            if (!java.util.Objects.equals(before, e.getValue()))
                throw new IllegalArgumentException("cannot resume " + stage() + " from " + dir + ": " + e.getKey()
                        + " was " + show(before) + " there and is " + show(e.getValue()) + " now; run with the same "
                        + "settings, or without --resume to start the stage afresh");
        }
        for (var it = saved.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!now.containsKey(k))
                throw new IllegalArgumentException("cannot resume " + stage() + " from " + dir + ": it was written "
                        + "with setting " + k + " = " + show(saved.get(k).asText()) + ", which this run does not have");
        }
    }

    private static String show(String v) {
        return v == null ? "unset" : "'" + v + "'";
    }

    /**
     * Checks that model folder {@code name} holds every parameter of {@code model} with its shape (a LoRA layer's
     * weight and adapters in {@link #LORA_STATE}, which must then be there).
     */
    public void verifyModel(String name, Module model) {
        java.util.Set<String> owned = loraOwned(model);
        try (Safetensors st = Safetensors.open(dir.resolve(name).resolve("model.safetensors"));
             Safetensors ls = loraState(name, model)) {
            for (var e : model.namedParameters().entrySet()) {
                Safetensors in = owned.contains(e.getKey()) ? ls : st;
                Safetensors.Entry t = in.entries().get(e.getKey());
                if (t == null) throw new DamagedException(in.file() + ": no tensor '" + e.getKey() + "'");
                if (!Arrays.equals(t.shape(), e.getValue().shape()) || !t.dtype().equals("F32"))
                    throw new DamagedException(in.file() + ": tensor '" + e.getKey() + "' is " + t.dtype()
                            + Arrays.toString(t.shape()) + ", not F32" + Arrays.toString(e.getValue().shape()));
            }
        } catch (ModelFormatException e) {
            throw new DamagedException(e.getMessage());
        }
    }

    /**
     * Loads model folder {@code name} into {@code model}'s parameters (checked first by {@link #verifyModel}): its
     * LoRA layers from {@link #LORA_STATE}, every other parameter from the Hugging Face weights.
     */
    public void loadModel(String name, Module model) {
        try (Safetensors st = Safetensors.open(dir.resolve(name).resolve("model.safetensors"));
             Safetensors ls = loraState(name, model);
             Autograd.NoGrad ignored = Autograd.noGrad()) {
            java.util.Set<String> owned = loraOwned(model);
            for (var e : model.namedParameters().entrySet())
                (owned.contains(e.getKey()) ? ls : st).read(e.getKey(), e.getValue().value());
        }
    }

    /**
     * {@link #loadModel(String, Module)} into a model that {@code owner} trains: at ZeRO stage 3 a group at a time,
     * as {@link #loadModel(String, Module, ShardedStore)} says; at other stages (or with {@code owner} null) a plain
     * load.
     */
    public void loadModel(String name, Module model, Optimized owner) {
        loadModel(name, model, owner == null ? null : owner.partitionedParameters());
    }

    /**
     * {@link #loadModel(String, Module)} into a model whose parameters {@code partitioned} holds (null: whole). At
     * ZeRO stage 3 they live in the ranks' partitions: every rank (a collective) walks the layer groups, each
     * gathered, written with the checkpoint's values and this rank's slice of it kept in its partition before the
     * next ({@link ShardedStore#walk}), so a resume never holds the whole model either.
     */
    public void loadModel(String name, Module model, ShardedStore partitioned) {
        if (partitioned == null) {
            loadModel(name, model);
            return;
        }
        Map<String, io.github.rlhf4j.nn.Parameter> params = model.namedParameters();
        try (Safetensors st = Safetensors.open(dir.resolve(name).resolve("model.safetensors"));
             Safetensors ls = loraState(name, model);
             Autograd.NoGrad ignored = Autograd.noGrad();
             ShardedStore.Walk walk = partitioned.walk(List.copyOf(params.keySet()), true, "the load of model '"
                     + name + "' from " + dir)) {
            java.util.Set<String> owned = loraOwned(model);
            for (var e : params.entrySet()) {
                walk.at(e.getKey());
                (owned.contains(e.getKey()) ? ls : st).read(e.getKey(), e.getValue().value());
            }
        }
    }

    /** The model folder's LoRA state, or null when {@code model} has no adapters. */
    private Safetensors loraState(String name, Module model) {
        if (Lora.adapters(model).isEmpty()) return null;
        Path f = dir.resolve(name).resolve(LORA_STATE);
        if (!Files.isRegularFile(f))
            throw new DamagedException(dir.resolve(name) + ": no " + LORA_STATE + ", but the model has LoRA adapters "
                    + "(was the checkpoint written without LoRA? resume with the same LoRA settings)");
        return Safetensors.open(f);
    }

    /** The parameters a LoRA checkpoint keeps in {@link #LORA_STATE}: each adapted weight and its adapters. */
    private static java.util.Set<String> loraOwned(Module model) {
        java.util.Set<String> out = new java.util.LinkedHashSet<>();
        for (var e : Lora.adapters(model).entrySet()) {
            String p = e.getKey().isEmpty() ? "" : e.getKey() + ".";
            out.add(p + "weight");
            out.add(p + Lora.RIGHT);
            out.add(p + Lora.LEFT);
        }
        return out;
    }

    /**
     * Checks that the checkpoint holds both moments of every AdamW group of {@code opt}: a whole file
     * ({@code optimizer/<name>.safetensors}, which any world size and ZeRO stage resumes from, each rank taking its
     * slices), or the partitions of as many ranks as this run has, at its ZeRO stage, each file as the manifest
     * describes it.
     *
     * @throws DamagedException naming the file that is missing or disagrees with the manifest
     * @throws IllegalArgumentException for partitions of another world size or ZeRO stage (consolidate them first)
     */
    public void verifyOptimizer(String name, Optimized opt) {
        OptimizerPartitions.PartitionMap m = partitions(name);
        if (m != null) OptimizerPartitions.requireFits(m, opt, dir);
        else OptimizerPartitions.verifyWhole(optimizerFile(dir, name), opt);
        JsonNode o = state().path("optimizers").path(name);
        if (!o.has("steps") || !o.has("skipped_steps"))
            throw new DamagedException(dir.resolve(MANIFEST) + ": no step counters for optimizer '" + name + "'");
    }

    /**
     * Restores {@code opt}'s moments (this rank's partition, or its slices of the whole moments), step count (and
     * with it the schedule's position) and skipped steps. Load the model's weights first: an offloaded optimizer
     * takes its fp32 master weights from them here.
     */
    public void loadOptimizer(String name, Optimized opt) {
        OptimizerPartitions.PartitionMap m = partitions(name);
        if (m != null) OptimizerPartitions.loadPartition(m, opt, dir);
        else OptimizerPartitions.loadWhole(optimizerFile(dir, name), opt);
        JsonNode o = state().path("optimizers").path(name);
        opt.restoreCounters(o.get("steps").asLong(), o.get("skipped_steps").asLong());
        opt.weightsReplaced(); // the models are loaded first (every stage's restore does so)
    }

    /** The number of ranks that wrote this checkpoint (1 for one process). */
    public int worldSize() {
        return manifest.path("world_size").asInt(1);
    }

    /**
     * What a consolidated checkpoint was made from ({@code checkpoint}, {@code world_size}, {@code zero_stages} by
     * optimizer), or a missing node for one written by a run.
     */
    public JsonNode consolidatedFrom() {
        return manifest.path("consolidated_from");
    }

    /** Whether some optimizer's state is partitioned over ranks (ZeRO stage 1 or more on several ranks). */
    public boolean partitioned() {
        return !manifest.path(PARTITIONS).isEmpty();
    }

    /** Optimizer {@code name}'s partition map, checked against the files; null when its moments are whole. */
    private OptimizerPartitions.PartitionMap partitions(String name) {
        JsonNode n = manifest.path(PARTITIONS).get(name);
        return n == null ? null : OptimizerPartitions.read(dir, dir.resolve(MANIFEST), name, n);
    }

    /** Integer array {@code name} of {@code state.safetensors}, or null when the checkpoint has none by that name. */
    public int[] ints(String name) {
        Path f = dir.resolve("state.safetensors");
        if (!Files.isRegularFile(f)) return null;
        try (Safetensors st = Safetensors.open(f); Scope s = Scope.open()) {
            Safetensors.Entry e = st.entries().get(name);
            if (e == null) return null;
            Tensor t = Tensor.ofInts(new int[(int) e.numel()], e.shape());
            st.read(name, t);
            return t.toIntArray();
        } catch (ModelFormatException e) {
            throw new DamagedException(e.getMessage());
        }
    }

    /** The first {@code lines} lines of the metrics file the checkpoint holds as {@code name}. */
    List<String> metricsLines(String name, int lines) {
        Path f = dir.resolve("logs").resolve(name);
        try {
            List<String> all = Files.readAllLines(f);
            if (all.size() < lines) throw new DamagedException(f + ": " + all.size() + " lines, written with " + lines);
            return all.subList(0, lines);
        } catch (IOException e) {
            throw new DamagedException(f + ": unreadable: " + e.getMessage());
        }
    }

    /** Records the finished stage's figures beside the manifest ({@code result.json}, written atomically). */
    public Checkpoint withResult(JsonNode figures) {
        try {
            writeAtomically(dir.resolve(RESULT), JSON.writeValueAsBytes(figures));
            force(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + dir.resolve(RESULT) + ": " + e.getMessage(), e);
        }
        return new Checkpoint(dir, manifest, figures);
    }

    private static Path optimizerFile(Path dir, String name) {
        return dir.resolve(OptimizerPartitions.wholeFile(name));
    }

    // ---- writing -------------------------------------------------------------------------------------------------

    /**
     * Builds a checkpoint in a hidden folder beside its final place; {@link #commit} moves it there.
     *
     * <p>A collective writer (a communicator of several ranks) is made and used by every rank together, each call at
     * the same point on every rank: rank 0 makes the folder and writes the models, the integer state and the
     * metrics; every rank writes its own partition of each optimizer whose state is partitioned (ZeRO stage 1 and
     * up; {@code optimizer/<name>.rank-<r>-of-<N>.safetensors}, a temp file renamed into place). Each call ends with
     * the ranks telling each other whether their part succeeded, so that a failure on one rank stops every rank,
     * naming it, instead of leaving the others waiting; and only once every rank's files are in place does rank 0
     * write the manifest (with the partition map) and rename the folder. A {@code checkpoint-<step>} folder with a
     * manifest is therefore complete for every rank.
     */
    public static final class Writer implements AutoCloseable {
        private final Path stageDir, tmp;
        private final long step;
        private final int world;
        private final Communicator comm; // null: this process writes alone
        private final Map<String, int[][]> ints = new LinkedHashMap<>();
        private final Map<Path, Integer> metrics = new LinkedHashMap<>();
        private final ObjectNode partitions = JSON.createObjectNode();
        private boolean committed;

        /** Starts {@code stageDir/checkpoint-<step>}, written by this process alone. */
        public Writer(Path stageDir, long step) {
            this(stageDir, step, 1, null);
        }

        /**
         * Starts {@code stageDir/checkpoint-<step>} of a run over {@code world} ranks (recorded in the manifest).
         * {@code comm} null or of one rank: this process writes it alone (one process, or rank 0 of a ZeRO stage 0
         * run, where every rank holds the whole state); else every rank of {@code comm} makes this call and the
         * ones after it together.
         */
        public Writer(Path stageDir, long step, int world, Communicator comm) {
            this.stageDir = stageDir.toAbsolutePath().normalize();
            this.step = step;
            this.world = world;
            this.comm = comm == null || comm.worldSize() == 1 ? null : comm;
            long pid = ProcessHandle.current().pid();
            RuntimeException failed = null;
            if (rank() == 0) {
                Path t = tmpOf(this.stageDir, step, pid);
                try {
                    deleteTree(t);
                    Files.createDirectories(t);
                } catch (IOException e) {
                    failed = new UncheckedIOException("cannot create " + t + ": " + e.getMessage(), e);
                    pid = -1;
                }
            }
            if (this.comm != null) {
                // rank 0's pid names the folder every rank writes into, and tells them it is there
                long[] all = this.comm.allGather(rank() == 0 ? pid : 0);
                if (failed == null && all[0] < 0)
                    failed = new IllegalStateException("checkpoint " + step + ": rank 0 could not create its folder in "
                            + this.stageDir + " (rank 0 reports why)");
                pid = all[0];
            }
            if (failed != null) throw failed;
            this.tmp = tmpOf(this.stageDir, step, pid);
        }

        private static Path tmpOf(Path stageDir, long step, long pid) {
            return stageDir.resolve("." + PREFIX + step + ".tmp-" + pid);
        }

        private int rank() {
            return comm == null ? 0 : comm.rank();
        }

        /** The folder being written. */
        public Path dir() {
            return tmp;
        }

        /**
         * A model as a Hugging Face folder {@code name} (F32, one file), with the tokenizer files of
         * {@code sideFiles}; with LoRA adapters, their layers' exact state in {@link #LORA_STATE} as well. Rank 0
         * writes it.
         */
        public void model(String name, Module model, ConfigJson config, Path sideFiles) {
            agree("write model '" + name + "'", () -> {
                if (rank() == 0) writeModel(name, model, config, sideFiles);
            });
        }

        /**
         * {@link #model(String, Module, ConfigJson, Path)} of a model that {@code owner} trains: at ZeRO stage 3
         * every rank walks its layer groups with rank 0's write ({@link Optimized#partitionedParameters}).
         */
        public void model(String name, Module model, ConfigJson config, Path sideFiles, Optimized owner) {
            model(name, model, config, sideFiles, owner == null ? null : owner.partitionedParameters());
        }

        /**
         * {@link #model(String, Module, ConfigJson, Path)} of a model whose parameters {@code partitioned} holds
         * (null: whole): at ZeRO stage 3 every rank walks its layer groups with rank 0's write, one group whole at a
         * time ({@link ShardedStore#walk}, a collective).
         */
        public void model(String name, Module model, ConfigJson config, Path sideFiles, ShardedStore partitioned) {
            if (partitioned == null) {
                model(name, model, config, sideFiles);
                return;
            }
            agree("write model '" + name + "'", () -> writeModel(name, model, config, sideFiles, partitioned));
        }

        private void writeModel(String name, Module model, ConfigJson config, Path sideFiles) {
            writeModel(name, model, config, sideFiles, null);
        }

        /** Rank 0 writes; at ZeRO stage 3 ({@code partitioned} not null) every rank walks the groups with it. */
        private void writeModel(String name, Module model, ConfigJson config, Path sideFiles, ShardedStore partitioned) {
            walked(partitioned, HfModel.saveOrder(model), rank() == 0, "the save of model '" + name + "'",
                    at -> HfModel.save(model, config, tmp.resolve(name), sideFiles, DType.F32, Long.MAX_VALUE, at));
            java.util.Set<String> owned = loraOwned(model);
            if (owned.isEmpty()) return;
            Map<String, Tensor> raw = new LinkedHashMap<>();
            Map<String, io.github.rlhf4j.nn.Parameter> params = model.namedParameters();
            for (String n : owned) raw.put(n, params.get(n).value());
            walked(partitioned, List.copyOf(owned), rank() == 0, "the save of model '" + name + "''s LoRA state", at -> {
                try {
                    Safetensors.write(tmp.resolve(name).resolve(LORA_STATE), raw, DType.F32,
                            Map.of("format", "rlhf4j-lora"), (n, t) -> {
                                at.accept(n);
                                return t;
                            });
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot write LoRA state to " + tmp.resolve(name) + ": "
                            + e.getMessage(), e);
                }
            });
        }

        /**
         * An optimizer's moments: whole in {@code optimizer/<name>.safetensors} (rank 0), or, when {@code opt}'s
         * state is partitioned, each rank's own partition; its counters go in the state.
         */
        public void optimizer(String name, Optimized opt) {
            if (opt.zeroStage() == 0) {
                agree("write the optimizer state of '" + name + "'", () -> {
                    if (rank() == 0) writeWholeOptimizer(name, opt);
                });
                return;
            }
            if (comm == null)
                throw new IllegalStateException("optimizer '" + name + "' is partitioned (ZeRO stage " + opt.zeroStage()
                        + "): every rank writes its checkpoint together (a Writer over the communicator)");
            int r = comm.rank(), n = comm.worldSize();
            agree("write its partition of the optimizer state of '" + name + "'", () -> {
                try {
                    OptimizerPartitions.writePartition(tmp.resolve(OptimizerPartitions.partitionFile(name, r, n)), opt,
                            r, n);
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot write rank " + r + "'s optimizer partition into " + tmp
                            + ": " + e.getMessage(), e);
                }
            });
            agree("list the optimizer partitions of '" + name + "'", () -> {
                if (r == 0) partitions.set(name, OptimizerPartitions.describe(tmp, name, opt));
            });
        }

        private void writeWholeOptimizer(String name, Optimized opt) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            for (int i = 0; i < opt.adamw().groups().size(); i++) {
                Tensor[] mv = opt.adamw().moments(i);
                tensors.put("exp_avg." + i, mv[0]);
                tensors.put("exp_avg_sq." + i, mv[1]);
            }
            try {
                Files.createDirectories(tmp.resolve("optimizer"));
                Safetensors.write(optimizerFile(tmp, name), tensors, DType.F32, Map.of("format", "rlhf4j-adamw"));
            } catch (IOException e) {
                throw new UncheckedIOException("cannot write optimizer state to " + tmp + ": " + e.getMessage(), e);
            }
        }

        /** An integer array of shape [rows, cols] in {@code state.safetensors} (written by {@link #commit}). */
        public void ints(String name, int[] values, int rows, int cols) {
            ints.put(name, new int[][] {values, {rows, cols}});
        }

        /** The first {@code lines} lines of a metrics file, as {@code logs/<its name>} (copied by {@link #commit}). */
        public void metrics(Path file, int lines) {
            metrics.put(file, lines);
        }

        /**
         * Writes the manifest, forces every file and folder to disk and renames the folder to
         * {@code checkpoint-<step>} (replacing one of that name). A collective writer does this on rank 0 once every
         * rank's part is written, and returns null on the other ranks.
         *
         * @param settings what a resumed run must share, by flag name
         * @param state the stage's counters and positions
         */
        public Checkpoint commit(String stage, long totalSteps, Map<String, String> settings, ObjectNode state) {
            Checkpoint[] made = new Checkpoint[1];
            agree("commit " + stageDir.resolve(PREFIX + step), () -> {
                if (rank() == 0) made[0] = commitHere(stage, totalSteps, settings, state);
            });
            committed = true;
            return made[0];
        }

        private Checkpoint commitHere(String stage, long totalSteps, Map<String, String> settings, ObjectNode state) {
            Path target = stageDir.resolve(PREFIX + step);
            try {
                for (var e : metrics.entrySet()) copyMetrics(e.getKey(), e.getValue());
                if (!ints.isEmpty())
                    try (Scope s = Scope.open()) {
                        Map<String, Tensor> t = new LinkedHashMap<>();
                        ints.forEach((k, v) -> t.put(k, Tensor.ofInts(v[0], v[1][0], v[1][1])));
                        Safetensors.write(tmp.resolve("state.safetensors"), t, DType.I32, Map.of());
                    }
                ObjectNode m = JSON.createObjectNode();
                m.put("format_version", FORMAT_VERSION);
                m.put("producer", "rlhf4j " + Rlhf4j.version());
                m.put("stage", stage);
                m.put("step", step);
                m.put("total_steps", totalSteps);
                m.put("world_size", world);
                ObjectNode s = m.putObject("settings");
                settings.forEach(s::put);
                m.set("state", state);
                if (!partitions.isEmpty()) m.set(PARTITIONS, partitions);
                m.set("files", sealFiles(tmp));
                Files.write(tmp.resolve(MANIFEST), JSON.writeValueAsBytes(m));
                force(tmp.resolve(MANIFEST));
                forceFolders(tmp);
                place(tmp, target);
                return new Checkpoint(target, m, null);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot write checkpoint " + target + ": " + e.getMessage(), e);
            }
        }

        private void copyMetrics(Path file, int lines) throws IOException {
            Files.createDirectories(tmp.resolve("logs"));
            List<String> all = Files.exists(file) ? Files.readAllLines(file) : List.of();
            Files.write(tmp.resolve("logs").resolve(file.getFileName().toString()),
                    all.subList(0, Math.min(lines, all.size())));
        }

        /**
         * Runs this rank's part of a step; on a collective writer the ranks then tell each other how it went, and a
         * failure on any rank throws on every rank (its own error where it happened, a line naming it elsewhere).
         */
        private void agree(String what, Runnable work) {
            if (comm == null) {
                work.run();
                return;
            }
            try {
                comm.agree(what + " for checkpoint " + step, work);
            } catch (io.github.rlhf4j.dist.Communicator.PeerFailed e) {
                throw new IllegalStateException(e.getMessage() + "; the checkpoint is not kept", e);
            }
        }

        /** Removes the half-written folder unless it was committed (rank 0's: it made the folder). */
        @Override
        public void close() {
            if (committed || rank() != 0) return;
            try {
                deleteTree(tmp);
            } catch (IOException ignored) {
                // a leftover hidden folder is removed when the stage next starts
            }
        }
    }

    /**
     * Runs {@code work} (when {@code here}), which reads or writes parameters {@code names} of {@code partitioned}
     * in that order and calls the consumer it is given before each: at ZeRO stage 3 every rank walks the layer
     * groups with it, one whole at a time ({@link ShardedStore#walk}, a collective; a rank that does not work, or
     * fails, runs the walk's gathers alone); {@code partitioned} null: just the work, the parameters being whole.
     */
    static void walked(ShardedStore partitioned, List<String> names, boolean here, String what,
                       java.util.function.Consumer<java.util.function.Consumer<String>> work) {
        ShardedStore.Walk walk = partitioned == null ? null : partitioned.walk(names, false, what);
        if (walk == null) {
            if (here) work.accept(n -> {});
            return;
        }
        try (walk) {
            if (here) work.accept(walk::at);
        }
    }

    /** The size of every tensor file under {@code folder} (each forced to disk on the way), by relative path. */
    private static ObjectNode sealFiles(Path folder) throws IOException {
        ObjectNode files = JSON.createObjectNode();
        List<Path> all;
        try (Stream<Path> w = Files.walk(folder)) {
            all = w.filter(Files::isRegularFile).sorted().toList();
        }
        for (Path p : all) {
            String rel = folder.relativize(p).toString().replace('\\', '/');
            if (rel.endsWith(".safetensors")) files.put(rel, Files.size(p));
            force(p);
        }
        return files;
    }

    private static void forceFolders(Path folder) throws IOException {
        try (Stream<Path> w = Files.walk(folder)) {
            for (Path d : w.filter(Files::isDirectory).toList()) force(d);
        }
    }

    /**
     * Renames finished folder {@code tmp} to {@code target}; one already there is first renamed to a hidden name
     * and removed after, so that a {@code checkpoint-<step>} folder is always a complete one.
     */
    private static void place(Path tmp, Path target) throws IOException {
        Path parent = target.getParent();
        Path old = null;
        if (Files.exists(target)) {
            old = parent.resolve("." + target.getFileName() + ".old-" + ProcessHandle.current().pid());
            deleteTree(old);
            Files.move(target, old, StandardCopyOption.ATOMIC_MOVE);
        }
        Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
        force(parent);
        if (old != null) deleteTree(old);
    }

    // ---- consolidating -------------------------------------------------------------------------------------------

    /**
     * Turns a partitioned checkpoint {@code dir} into a single-process one at {@code out} ({@code dir} itself, or
     * another folder named {@code checkpoint-<step>}; one already there is replaced): each partitioned optimizer's
     * whole moments in {@code optimizer/<name>.safetensors}, world size 1, and everything else (the model folders,
     * whole Hugging Face models already; the state, metrics and result) as it was. Written into a hidden sibling
     * folder and renamed into place, as a checkpoint is. It resumes on any number of ranks and at any ZeRO stage,
     * each rank taking its slices of the whole moments.
     *
     * @throws DamagedException naming a file that is missing or disagrees with the manifest
     * @throws IllegalArgumentException when nothing in {@code dir} is partitioned, or {@code out} is misnamed
     */
    public static Checkpoint consolidate(Path dir, Path out) {
        Path src = dir.toAbsolutePath().normalize(), dst = out.toAbsolutePath().normalize();
        Checkpoint c = open(src);
        if (!c.partitioned())
            throw new IllegalArgumentException(src.resolve(MANIFEST) + ": no optimizer state in it is partitioned "
                    + "(written by " + c.worldSize() + " rank(s) without ZeRO partitions): it resumes on any number of "
                    + "ranks as it is");
        if (!dst.getFileName().toString().equals(PREFIX + c.step()))
            throw new IllegalArgumentException("--out " + out + ": name the folder " + PREFIX + c.step() + " (--resume "
                    + "looks for checkpoint-<step> folders in OUTPUT_DIR/checkpoints/<stage>/)");
        Map<String, OptimizerPartitions.PartitionMap> maps = new LinkedHashMap<>();
        java.util.Set<String> parts = new java.util.HashSet<>();
        for (var it = c.manifest.get(PARTITIONS).properties().iterator(); it.hasNext(); ) {
            var e = it.next();
            OptimizerPartitions.PartitionMap m = OptimizerPartitions.read(src, src.resolve(MANIFEST), e.getKey(),
                    e.getValue());
            maps.put(e.getKey(), m);
            for (OptimizerPartitions.Partition p : m.ranks()) parts.add(p.file());
        }
        Path tmp = dst.resolveSibling("." + PREFIX + c.step() + ".consolidating-" + ProcessHandle.current().pid());
        try {
            Files.createDirectories(dst.getParent());
            deleteTree(tmp);
            Files.createDirectories(tmp);
            List<Path> all;
            try (Stream<Path> w = Files.walk(src)) {
                all = w.filter(Files::isRegularFile).toList();
            }
            for (Path p : all) {
                String rel = src.relativize(p).toString().replace('\\', '/');
                if (rel.equals(MANIFEST) || parts.contains(rel)) continue;
                Path to = tmp.resolve(rel);
                Files.createDirectories(to.getParent());
                try {
                    Files.createLink(to, p); // checkpoint files are never changed in place: sharing them is safe
                } catch (IOException | UnsupportedOperationException e) {
                    Files.copy(p, to);
                }
            }
            for (OptimizerPartitions.PartitionMap m : maps.values())
                OptimizerPartitions.writeWhole(tmp.resolve(OptimizerPartitions.wholeFile(m.name())), m, src);
            ObjectNode m = c.manifest.deepCopy();
            m.put("world_size", 1);
            m.remove(PARTITIONS);
            ObjectNode from = m.putObject("consolidated_from");
            from.put("checkpoint", src.toString());
            from.put("world_size", c.worldSize());
            ObjectNode stages = from.putObject("zero_stages");
            maps.forEach((k, v) -> stages.put(k, v.stage()));
            m.set("files", sealFiles(tmp));
            Files.write(tmp.resolve(MANIFEST), JSON.writeValueAsBytes(m));
            force(tmp.resolve(MANIFEST));
            forceFolders(tmp);
            place(tmp, dst);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the consolidated checkpoint " + dst + ": " + e.getMessage(), e);
        } finally {
            try {
                deleteTree(tmp);
            } catch (IOException ignored) {
                // a hidden leftover: removed when the stage next starts
            }
        }
        return open(dst);
    }

    // ---- housekeeping --------------------------------------------------------------------------------------------

    /** Removes a stage folder's hidden leftovers of killed writers ({@code .checkpoint-*}). */
    static void removeLeftovers(Path stageDir) throws IOException {
        if (!Files.isDirectory(stageDir)) return;
        try (Stream<Path> s = Files.list(stageDir)) {
            for (Path p : s.filter(p -> p.getFileName().toString().startsWith("." + PREFIX)).toList()) deleteTree(p);
        }
    }

    /**
     * Removes a checkpoint folder: first renamed to a hidden name, so that a removal cut short never leaves a
     * {@code checkpoint-<step>} folder that looks complete.
     */
    static void remove(Path dir) throws IOException {
        Path hidden = dir.resolveSibling("." + dir.getFileName() + ".removing-" + ProcessHandle.current().pid());
        Files.move(dir, hidden, StandardCopyOption.ATOMIC_MOVE);
        deleteTree(hidden);
    }

    private static void writeAtomically(Path file, byte[] bytes) throws IOException {
        Path tmp = file.resolveSibling("." + file.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        Files.write(tmp, bytes);
        force(tmp);
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    /** fsync of a file or (where the platform allows it) a folder. */
    private static void force(Path p) throws IOException {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException e) {
            if (!Files.isDirectory(p)) throw e; // folders cannot be opened for fsync on some platforms
        }
    }

    static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) Files.delete(q);
        }
    }
}
