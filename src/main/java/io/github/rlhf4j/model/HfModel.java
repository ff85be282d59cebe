package io.github.rlhf4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.Rlhf4j;
import io.github.rlhf4j.nn.Lora;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.nn.Parameter;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BiFunction;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * A causal LM in Hugging Face layout: {@code config.json} plus {@code model.safetensors} or shards listed in
 * {@code model.safetensors.index.json}, loaded into a {@link CausalLM} whose parameters live in one
 * {@link ParameterStore}; and written back the same way, so transformers' {@code from_pretrained} loads a trained
 * actor unchanged. Tensor names map one to one (rlhf4j's modules use transformers' names); a checkpoint of the bare
 * base model (no {@code transformer.} / {@code model.} prefix) or of a DeepSpeed-Chat reward model
 * ({@code rwtranrsformer.}, or {@code rwtransformer.} as newer DS-Chat spells it) loads as well.
 */
public final class HfModel implements AutoCloseable {
    /** Tokenizer and generation files copied along when a model is saved. */
    public static final List<String> SIDE_FILES = List.of("tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "generation_config.json", "vocab.json", "merges.txt", "added_tokens.json",
            "chat_template.jinja", "tokenizer.model");
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Path dir;
    private final ConfigJson configJson;
    private final CausalLM model;
    private final ParameterStore parameters;

    private HfModel(Path dir, ConfigJson configJson, CausalLM model, ParameterStore parameters) {
        this.dir = dir;
        this.configJson = configJson;
        this.model = model;
        this.parameters = parameters;
    }

    /**
     * Loads {@code dir}'s model on {@code device} with parameters in {@code dtype} (F32; F64 for checks), with
     * gradient buffers for training.
     */
    public static HfModel load(Path dir, Device device, DType dtype) {
        return load(dir, device, dtype, true);
    }

    /** As {@link #load(Path, Device, DType)}; {@code trainable} false loads for inference only (no gradients). */
    public static HfModel load(Path dir, Device device, DType dtype, boolean trainable) {
        return load(dir, device, dtype, trainable, m -> {});
    }

    /**
     * As {@link #load(Path, Device, DType, boolean)}, with {@code beforeAllocation} run on the built model before its
     * parameters are laid out: where LoRA adapters go in ({@code lora::applyTo} of a {@link Lora.Config}). Adapters
     * the directory does not hold keep their initialisation (a fresh adapter leaves the output unchanged).
     */
    public static HfModel load(Path dir, Device device, DType dtype, boolean trainable,
                               Consumer<? super CausalLM> beforeAllocation) {
        return load(dir, device, dtype, trainable, beforeAllocation, ParameterStore.Layout.DEFAULT);
    }

    /** As {@link #load(Path, Device, DType, boolean, Consumer)}, laid out as {@code layout} says (ZeRO's layouts). */
    public static HfModel load(Path dir, Device device, DType dtype, boolean trainable,
                               Consumer<? super CausalLM> beforeAllocation, ParameterStore.Layout layout) {
        ConfigJson json = ConfigJson.read(dir.resolve("config.json"));
        ModelConfig config = Models.config(json);
        CausalLM model = CausalLM.of(config);
        beforeAllocation.accept(model);
        ParameterStore store = ParameterStore.allocate(model, device, dtype, 0, trainable, layout);
        try {
            loadWeights(model, config.basePrefix(), dir, Set.of());
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
        model.train(false);
        return new HfModel(dir, json, model, store);
    }

    /**
     * {@code dir}'s model (or, with {@code dir} null, {@code config}'s randomly initialised under {@code seed}) built
     * partitioned, never whole on {@code device} (ZeRO stage 3's {@code zero.Init}): the parameters are laid out
     * ({@link ParameterStore#layOut}), {@code partition} allocates this rank's share of them and binds them (a
     * {@code ShardedStore}) and returns what to tell after each parameter is read ({@code ShardedStore#loaded}),
     * and the weights are read through it. Every rank must call it alike.
     */
    public static HfModel partitioned(Path dir, ConfigJson config, Device device, long seed, boolean trainable,
                                      Consumer<? super CausalLM> beforeAllocation, ParameterStore.Layout layout,
                                      java.util.function.Function<ParameterStore, Consumer<String>> partition) {
        ConfigJson json = dir != null ? ConfigJson.read(dir.resolve("config.json")) : config;
        ModelConfig c = Models.config(json);
        CausalLM model = CausalLM.of(c);
        beforeAllocation.accept(model);
        ParameterStore store = ParameterStore.layOut(model, device, DType.F32, seed, trainable, layout);
        try {
            Consumer<String> afterEach = partition.apply(store);
            if (dir != null) loadWeights(model, c.basePrefix(), dir, Set.of(), afterEach);
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
        if (dir != null) model.train(false);
        return new HfModel(dir, json, model, store);
    }

    /** A randomly initialised model of {@code config} (transformers' initialisation scheme, Philox(seed)). */
    public static HfModel random(ConfigJson config, Device device, DType dtype, long seed) {
        return random(config, device, dtype, seed, true);
    }

    /** As {@link #random(ConfigJson, Device, DType, long)}; {@code trainable} false: no gradient buffers. */
    public static HfModel random(ConfigJson config, Device device, DType dtype, long seed, boolean trainable) {
        return random(config, device, dtype, seed, trainable, m -> {});
    }

    /**
     * As {@link #random(ConfigJson, Device, DType, long, boolean)}, with {@code beforeAllocation} run on the built
     * model before its parameters are laid out (LoRA). The initial weights then differ from those of a model without
     * adapters and the same seed: each parameter's random stream starts at its offset in the layout.
     */
    public static HfModel random(ConfigJson config, Device device, DType dtype, long seed, boolean trainable,
                                 Consumer<? super CausalLM> beforeAllocation) {
        return random(config, device, dtype, seed, trainable, beforeAllocation, ParameterStore.Layout.DEFAULT);
    }

    /**
     * As {@link #random(ConfigJson, Device, DType, long, boolean, Consumer)}, laid out as {@code layout} says. A
     * layout that pads between groups moves parameters' offsets, and so their random streams: the same seed then
     * gives other initial weights.
     */
    public static HfModel random(ConfigJson config, Device device, DType dtype, long seed, boolean trainable,
                                 Consumer<? super CausalLM> beforeAllocation, ParameterStore.Layout layout) {
        ModelConfig c = Models.config(config);
        CausalLM model = CausalLM.of(c);
        beforeAllocation.accept(model);
        return new HfModel(null, config, model, ParameterStore.allocate(model, device, dtype, seed, trainable, layout));
    }

    /** The directory it was loaded from (null for a random model). */
    public Path dir() {
        return dir;
    }

    public CausalLM model() {
        return model;
    }

    public ParameterStore parameters() {
        return parameters;
    }

    public ModelConfig config() {
        return model.config();
    }

    public ConfigJson configJson() {
        return configJson;
    }

    /** Writes this model to {@code out} (see {@link #save(Module, ConfigJson, Path, Path, DType, long)}). */
    public void save(Path out, DType dtype) {
        save(model, configJson, out, dir, dtype, 5L << 30);
    }

    @Override
    public void close() {
        parameters.close();
    }

    // ---- loading ------------------------------------------------------------------------------------------------

    /** What {@link #loadWeights} did besides loading: checkpoint tensors it skipped, parameters it left as they were. */
    public record LoadReport(int loaded, List<String> skipped, List<String> notInCheckpoint) {}

    /**
     * Reads every parameter of {@code model} (allocated) from the safetensors checkpoint in {@code dir}. A parameter
     * {@code prefix.x} also matches a checkpoint tensor {@code x} or {@code rwtranrsformer.x} (and
     * {@code rwtranrsformer.x} matches {@code prefix.x} and {@code x}), so causal-LM, base-model and reward-model
     * checkpoints load into each other. Parameters in {@code mayBeMissing} (a fresh v_head) keep their
     * initialisation; so do LoRA adapters ({@link Lora}), which a Hugging Face directory does not hold. Any other
     * missing parameter fails, naming it. Checkpoint tensors that no parameter takes fail too, except transformers'
     * buffers and heads the model does not have (a tied lm_head, a v_head), which are skipped.
     */
    public static LoadReport loadWeights(Module model, String basePrefix, Path dir, Set<String> mayBeMissing) {
        return loadWeights(model, basePrefix, dir, mayBeMissing, name -> {});
    }

    /**
     * As {@link #loadWeights(Module, String, Path, Set)}, telling {@code afterEach} each parameter's name once it is
     * read (or left at its initialisation), in the model's order: a store built partitioned keeps each finished
     * group's slice and gives the group back ({@code ShardedStore#loaded}).
     */
    public static LoadReport loadWeights(Module model, String basePrefix, Path dir, Set<String> mayBeMissing,
                                         Consumer<String> afterEach) {
        try (Checkpoint ckpt = Checkpoint.open(dir)) {
            Set<String> unused = new LinkedHashSet<>(ckpt.names());
            List<String> missing = new ArrayList<>();
            int loaded = 0;
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                for (var e : model.namedParameters().entrySet()) {
                    String found = null;
                    for (String c : candidates(e.getKey(), basePrefix))
                        if (ckpt.has(c)) {
                            found = c;
                            break;
                        }
                    if (found == null) {
                        if (mayBeMissing.contains(e.getKey()) || Lora.isLoraParameter(e.getKey())) {
                            missing.add(e.getKey());
                            afterEach.accept(e.getKey());
                            continue;
                        }
                        throw new ModelFormatException(ckpt.describe() + ": no tensor for parameter '" + e.getKey()
                                + "' (looked for " + String.join(", ", candidates(e.getKey(), basePrefix)) + ")");
                    }
                    ckpt.read(found, e.getValue().value());
                    unused.remove(found);
                    loaded++;
                    afterEach.accept(e.getKey());
                }
            }
            List<String> skipped = new ArrayList<>();
            for (String name : unused) {
                if (Lora.isLoraParameter(name))
                    throw new ModelFormatException(ckpt.describe() + ": tensor '" + name + "' is a LoRA adapter that "
                            + "this " + model.getClass().getSimpleName() + " does not have; apply LoRA with the same "
                            + "module name and dim before loading");
                if (!skippable(name))
                    throw new ModelFormatException(ckpt.describe() + ": tensor '" + name + "' is not a parameter of "
                            + "this " + model.getClass().getSimpleName() + " (wrong model_type or config?)");
                skipped.add(name);
            }
            return new LoadReport(loaded, skipped, missing);
        }
    }

    private static List<String> candidates(String name, String basePrefix) {
        String rw = RewardModel.BASE_NAME + ".", rwNew = "rwtransformer."; // DS-Chat's old spelling and its fix
        String rest = name.startsWith(basePrefix + ".") ? name.substring(basePrefix.length() + 1)
                : name.startsWith(rw) ? name.substring(rw.length()) : null;
        if (rest == null) return List.of(name);
        return List.of(name, basePrefix + "." + rest, rest, rw + rest, rwNew + rest).stream().distinct().toList();
    }

    /** Non-parameter buffers transformers keeps in state dicts, and heads a loading model may not have. */
    private static boolean skippable(String name) {
        return name.endsWith(".attn.bias") || name.endsWith(".attn.masked_bias") || name.endsWith("rotary_emb.inv_freq")
                || name.endsWith(".attention.bias") || name.endsWith(".attention.masked_bias")
                || name.equals("lm_head.weight") || name.equals("v_head.weight");
    }

    /** The safetensors files of a model directory, by tensor name. */
    static final class Checkpoint implements AutoCloseable {
        private final Path dir;
        private final Map<String, Safetensors> byName = new LinkedHashMap<>();
        private final List<Safetensors> files = new ArrayList<>();

        private Checkpoint(Path dir) {
            this.dir = dir;
        }

        static Checkpoint open(Path dir) {
            Path single = dir.resolve("model.safetensors"), index = dir.resolve("model.safetensors.index.json");
            Checkpoint c = new Checkpoint(dir);
            try {
                if (Files.exists(index)) {
                    ConfigJson idx = ConfigJson.read(index);
                    JsonNode map = idx.node("weight_map");
                    if (map == null || !map.isObject()) throw idx.error("weight_map", "is missing or not an object");
                    Map<String, Safetensors> opened = new LinkedHashMap<>();
                    for (var it = map.properties().iterator(); it.hasNext(); ) {
                        var f = it.next();
                        String shard = f.getValue().asText();
                        if (shard.contains("/") || shard.contains("\\"))
                            throw idx.error("weight_map", "names a shard outside the directory: " + shard);
                        Safetensors st = opened.computeIfAbsent(shard, s -> c.add(Safetensors.open(dir.resolve(s))));
                        if (!st.entries().containsKey(f.getKey()))
                            throw new ModelFormatException(index + ": weight_map puts '" + f.getKey() + "' in " + shard
                                    + ", which has no such tensor");
                        c.byName.put(f.getKey(), st);
                    }
                } else if (Files.exists(single)) {
                    Safetensors st = c.add(Safetensors.open(single));
                    for (String n : st.entries().keySet()) c.byName.put(n, st);
                } else {
                    for (String bin : List.of("pytorch_model.bin", "pytorch_model.bin.index.json"))
                        if (Files.exists(dir.resolve(bin)))
                            throw new ModelFormatException(dir.resolve(bin) + ": PyTorch pickle checkpoints can run "
                                    + "code when loaded, so rlhf4j refuses them. Convert the model to safetensors "
                                    + "once with transformers: python -c \"from transformers import "
                                    + "AutoModelForCausalLM as M; M.from_pretrained('" + dir + "').save_pretrained('"
                                    + dir + "', safe_serialization=True)\"");
                    throw new ModelFormatException(dir + ": no model.safetensors or model.safetensors.index.json");
                }
            } catch (RuntimeException e) {
                c.close();
                throw e;
            }
            return c;
        }

        private Safetensors add(Safetensors st) {
            files.add(st);
            return st;
        }

        Set<String> names() {
            return byName.keySet();
        }

        boolean has(String name) {
            return byName.containsKey(name);
        }

        void read(String name, Tensor dst) {
            byName.get(name).read(name, dst);
        }

        String describe() {
            return files.size() == 1 ? files.get(0).file().toString() : dir + " (" + files.size() + " safetensors shards)";
        }

        @Override
        public void close() {
            for (Safetensors f : files) f.close();
        }
    }

    // ---- saving -------------------------------------------------------------------------------------------------

    /**
     * Writes {@code model}'s parameters (in {@code dtype}, under their own names, shards of at most
     * {@code maxShardBytes} with an index when they do not fit one file), {@code config} as config.json (its
     * dtype field updated), and the tokenizer and generation files of {@code sideFilesFrom} (may be null) to
     * {@code out}. The directory is built beside {@code out} and renamed into place, so {@code out} is never seen
     * half-written; an existing {@code out} is replaced.
     *
     * <p>LoRA adapters are fused into their weights and not written, as DeepSpeed-Chat saves
     * (convert_lora_to_linear_layer, then save_hf_format drops the {@code lora} keys): the files hold exactly the
     * tensors transformers expects. The fused weights are computed one at a time for the file; the model is not
     * changed.
     */
    public static void save(Module model, ConfigJson config, Path out, Path sideFilesFrom, DType dtype,
                            long maxShardBytes) {
        save(model, config, out, sideFilesFrom, dtype, maxShardBytes, null);
    }

    /**
     * The parameters a {@link #save} reads, in the order it reads them: every parameter by name order, less the
     * LoRA adapters when they are fused into their weights.
     */
    public static List<String> saveOrder(Module model) {
        boolean fusing = !Lora.adaptedWeights(model).isEmpty();
        List<String> out = new ArrayList<>();
        for (String n : model.namedParameters().keySet()) if (!fusing || !Lora.isLoraParameter(n)) out.add(n);
        return out;
    }

    /**
     * {@link #save(Module, ConfigJson, Path, Path, DType, long)}, telling {@code beforeEach} (when not null) each
     * parameter's name just before its values are read, in {@link #saveOrder}: ZeRO stage 3 gathers its layer group
     * there, so that a save holds one group whole at a time.
     */
    public static void save(Module model, ConfigJson config, Path out, Path sideFilesFrom, DType dtype,
                            long maxShardBytes, java.util.function.Consumer<String> beforeEach) {
        if (!dtype.isFloatingPoint() || dtype == DType.F64)
            throw new IllegalArgumentException("save: dtype must be F32, BF16 or F16, not " + dtype);
        Path abs = out.toAbsolutePath().normalize();
        Path tmp = abs.resolveSibling("." + abs.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        try {
            deleteTree(tmp);
            Files.createDirectories(tmp);
            List<Map<String, Tensor>> shards = new ArrayList<>();
            Map<String, Tensor> current = new LinkedHashMap<>();
            long bytes = 0, total = 0;
            Map<String, Lora.Adapter> fused = Lora.adaptedWeights(model);
            for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet()) {
                if (!fused.isEmpty() && Lora.isLoraParameter(e.getKey())) continue;
                Tensor t = e.getValue().value();
                long b = t.numel() * dtype.size;
                if (!current.isEmpty() && bytes + b > maxShardBytes) {
                    shards.add(current);
                    current = new LinkedHashMap<>();
                    bytes = 0;
                }
                current.put(e.getKey(), t);
                bytes += b;
                total += b;
            }
            shards.add(current);
            // a fixed order (Map.of's changes from JVM to JVM): the same weights give the same bytes
            Map<String, String> meta = new java.util.TreeMap<>(Map.of("format", "pt", "producer",
                    "rlhf4j " + Rlhf4j.version()));
            BiFunction<String, Tensor, Tensor> content = fused.isEmpty() && beforeEach == null ? null
                    : (name, t) -> {
                        if (beforeEach != null) beforeEach.accept(name);
                        return fused.containsKey(name) ? fused.get(name).fusedWeight() : t;
                    };
            if (shards.size() == 1) {
                Safetensors.write(tmp.resolve("model.safetensors"), shards.get(0), dtype, meta, content);
            } else {
                ObjectNode index = JSON.createObjectNode();
                index.putObject("metadata").put("total_size", total);
                ObjectNode map = index.putObject("weight_map");
                for (int i = 0; i < shards.size(); i++) {
                    String name = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
                    Safetensors.write(tmp.resolve(name), shards.get(i), dtype, meta, content);
                    for (String n : shards.get(i).keySet()) map.put(n, name);
                }
                Files.write(tmp.resolve("model.safetensors.index.json"), JSON.writeValueAsBytes(index));
            }
            ObjectNode json = config.json();
            String torchDtype = switch (dtype) {
                case BF16 -> "bfloat16";
                case F16 -> "float16";
                default -> "float32";
            };
            json.put(json.has("dtype") ? "dtype" : "torch_dtype", torchDtype);
            Files.write(tmp.resolve("config.json"), JSON.writeValueAsBytes(json));
            if (sideFilesFrom != null)
                for (String f : SIDE_FILES)
                    if (Files.isRegularFile(sideFilesFrom.resolve(f)))
                        Files.copy(sideFilesFrom.resolve(f), tmp.resolve(f), StandardCopyOption.REPLACE_EXISTING);
            Path old = null;
            if (Files.exists(abs)) {
                old = abs.resolveSibling("." + abs.getFileName() + ".old-" + ProcessHandle.current().pid());
                deleteTree(old);
                Files.move(abs, old, StandardCopyOption.ATOMIC_MOVE);
            }
            Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
            if (old != null) deleteTree(old);
        } catch (IOException e) {
            try {
                deleteTree(tmp);
            } catch (IOException ignored) {
                // the original error matters more
            }
            throw new UncheckedIOException("cannot write model to " + out + ": " + e.getMessage(), e);
        }
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) Files.delete(q);
        }
    }
}
