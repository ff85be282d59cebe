package io.github.rlhf4j.model;

import java.nio.file.Path;

/** The model families rlhf4j implements, by config.json's {@code model_type}. */
public final class Models {
    private Models() {}

    /** The model types rlhf4j can build. */
    public static final java.util.List<String> SUPPORTED = java.util.List.of("gpt2", "opt", "gpt_neo", "llama", "qwen2");

    /** Parses a config.json into its family's config record. */
    public static ModelConfig config(ConfigJson json) {
        String type = json.modelType();
        return switch (type) {
            case "gpt2" -> Gpt2Config.fromJson(json);
            case "opt" -> OptConfig.fromJson(json);
            case "gpt_neo" -> GptNeoConfig.fromJson(json);
            case "llama", "qwen2" -> LlamaConfig.fromJson(json);
            default -> throw json.error("model_type", "= \"" + type + "\" is not supported; rlhf4j implements "
                    + String.join(", ", SUPPORTED));
        };
    }

    /** Reads {@code dir/config.json}. */
    public static ModelConfig config(Path dir) {
        return config(ConfigJson.read(dir.resolve("config.json")));
    }

    /** The family's base model for {@code config}. */
    public static Transformer base(ModelConfig config) {
        return switch (config) {
            case Gpt2Config c -> new Gpt2Model(c);
            case OptConfig c -> new OptModel(c);
            case GptNeoConfig c -> new GptNeoModel(c);
            case LlamaConfig c -> new LlamaModel(c);
            default -> throw new IllegalArgumentException("no model for config " + config.getClass().getName());
        };
    }
}
