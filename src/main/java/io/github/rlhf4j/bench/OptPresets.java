package io.github.rlhf4j.bench;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.ModelConfig;
import io.github.rlhf4j.model.ModelFormatException;
import io.github.rlhf4j.model.Models;
import io.github.rlhf4j.model.OptConfig;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * The model shapes the step-3 benchmark runs: the {@code config.json} of facebook/opt-125m, -350m, -1.3b, -2.7b,
 * -6.7b, -13b and -66b as the Hugging Face hub has them (shipped in the jar under {@code io/github/rlhf4j/bench/configs/}),
 * and {@code tiny}, a two-layer OPT with a 512-token vocabulary that runs in seconds. A name may also be the path of
 * any OPT {@code config.json}.
 */
public final class OptPresets {
    /** The presets, smallest first. */
    public static final List<String> NAMES =
            List.of("tiny", "opt-125m", "opt-350m", "opt-1.3b", "opt-2.7b", "opt-6.7b", "opt-13b", "opt-66b");

    private static final String DIR = "/io/github/rlhf4j/bench/configs/";

    private OptPresets() {}

    /**
     * The preset's canonical name for {@code name} ("opt-1.3b" for "1.3b", "OPT-1.3B" or "facebook/opt-1.3b"), or
     * null when it is none.
     */
    public static String canonical(String name) {
        String n = name.trim().toLowerCase(Locale.ROOT);
        if (n.startsWith("facebook/")) n = n.substring("facebook/".length());
        if (n.equals("opt-tiny")) n = "tiny";
        if (!n.equals("tiny") && !n.startsWith("opt-")) n = "opt-" + n;
        return NAMES.contains(n) ? n : null;
    }

    /** The config.json of a preset, or of the file {@code name} names. */
    public static ConfigJson json(String name) {
        String preset = canonical(name);
        if (preset == null) {
            Path file = Path.of(name);
            if (!Files.isRegularFile(file))
                throw new IllegalArgumentException("model '" + name + "' is neither a preset (" + String.join(", ", NAMES)
                        + ") nor a config.json file");
            return ConfigJson.read(file);
        }
        try (InputStream in = OptPresets.class.getResourceAsStream(DIR + preset + ".json")) {
            if (in == null) throw new IllegalStateException("the jar has no " + DIR + preset + ".json");
            return ConfigJson.parse(DIR.substring(1) + preset + ".json", new String(in.readAllBytes(),
                    StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The OPT config of {@code name}; with {@code noDropout}, dropout set to 0 as the benchmark's settings say (the
     * hub's configs have 0.1).
     */
    public static OptConfig config(String name, boolean noDropout) {
        ConfigJson j = json(name);
        if (noDropout) {
            ObjectNode o = j.json();
            o.put("dropout", 0.0);
            o.put("activation_dropout", 0.0);
            j = new ConfigJson(j.source(), o);
        }
        ModelConfig c = Models.config(j);
        if (!(c instanceof OptConfig opt))
            throw new ModelFormatException(j.source() + ": field 'model_type' = \"" + c.modelType()
                    + "\": the step-3 benchmark runs OPT shapes only");
        return opt;
    }

    /** A short label: the preset's name, or the file's. */
    public static String label(String name) {
        String preset = canonical(name);
        return preset != null ? preset : Path.of(name).toString();
    }
}
