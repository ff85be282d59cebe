package io.github.rlhf4j.data;

import ai.djl.engine.EngineException;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.ModelFormatException;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A Hugging Face tokenizer loaded from a model folder: the Rust {@code tokenizers} library (through DJL's Java binding,
 * whose jar carries {@code libtokenizers.so}) runs {@code tokenizer.json} exactly, and this class adds what
 * transformers' {@code AutoTokenizer} reads from the other files: the special tokens of {@code tokenizer_config.json}
 * / {@code special_tokens_map.json}, the chat template, and bos/eos/pad ids from {@code config.json} and
 * {@code generation_config.json} when the tokenizer names none.
 *
 * <p>{@link #encode(String)} adds special tokens as {@code AutoTokenizer(text)} does, through the post-processor in
 * {@code tokenizer.json}: GPT-2 and Qwen2 add none, OPT prepends {@code </s>}, Llama prepends {@code <s>}.
 * {@link #decode(int[], boolean)} is transformers' {@code decode}. (transformers 5 rebuilds the pipeline of some
 * tokenizer classes, such as {@code LlamaTokenizer}, from its own Python definition and keeps only the
 * post-processor of {@code tokenizer.json}; where an old file disagrees with the class, as early Llama-2
 * conversions do for text right after a special token, rlhf4j follows {@code tokenizer.json}, as the tokenizers
 * library and transformers 4 do.)
 *
 * <p>Ids that a model does not have are {@code -1}. Instances are safe to use from several threads; close the
 * tokenizer (it holds native memory) once no thread uses it.
 *
 * <p>The native library is extracted on first use to DJL's cache, {@code ~/.djl.ai/tokenizers/<version>/}
 * ({@code ENGINE_CACHE_DIR} or {@code DJL_CACHE_DIR} override it); where that folder cannot be written, rlhf4j points
 * DJL at {@code <java.io.tmpdir>/rlhf4j-djl-<user>/} instead. Nothing is downloaded, and DJL's usage ping is turned
 * off (system property {@code OPT_OUT_TRACKING=true}) unless the environment or a system property says otherwise.
 */
public final class Tokenizer implements AutoCloseable {
    static {
        DjlSetup.prepare();
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path dir;
    private final HuggingFaceTokenizer hf;
    private final String[] tokens; // by id; null where no token has that id
    private final Map<String, Integer> ids;
    private final BitSet special;
    private final int vocabSize;
    private final int bos, eos, pad;
    private final int[] stopIds;
    private final boolean cleanUpSpaces;
    private final ChatTemplate chatTemplate; // null: none in the model folder

    private Tokenizer(Path dir, HuggingFaceTokenizer hf, String[] tokens, Map<String, Integer> ids, BitSet special,
                      int vocabSize, int bos, int eos, int pad, int[] stopIds, boolean cleanUpSpaces,
                      ChatTemplate chatTemplate) {
        this.dir = dir;
        this.hf = hf;
        this.tokens = tokens;
        this.ids = ids;
        this.special = special;
        this.vocabSize = vocabSize;
        this.bos = bos;
        this.eos = eos;
        this.pad = pad;
        this.stopIds = stopIds;
        this.cleanUpSpaces = cleanUpSpaces;
        this.chatTemplate = chatTemplate;
    }

    /**
     * Loads the tokenizer of a Hugging Face model folder. {@code tokenizer.json} is required (a folder with only
     * {@code vocab.json} and {@code merges.txt}, or a SentencePiece {@code tokenizer.model}, fails with the
     * one-line transformers command that writes it); {@code tokenizer_config.json}, {@code special_tokens_map.json},
     * {@code chat_template.jinja}, {@code config.json} and {@code generation_config.json} are read when present.
     *
     * @throws ModelFormatException naming the file (and line, or the tokenizers library's reason) that cannot be used
     */
    public static Tokenizer load(Path modelDir) {
        Objects.requireNonNull(modelDir, "modelDir");
        if (!Files.isDirectory(modelDir)) throw new ModelFormatException(modelDir + ": not a folder");
        Path file = modelDir.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) throw missingTokenizerJson(modelDir);
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new ModelFormatException(file + ": cannot read: " + e.getMessage(), e);
        }
        Vocabulary v = Vocabulary.read(file, text);
        Map<String, Integer> ids = v.ids();
        int max = ids.values().stream().mapToInt(Integer::intValue).max().orElse(-1);
        String[] tokens = new String[max + 1];
        ids.forEach((t, id) -> {
            if (id >= 0) tokens[id] = t;
        });

        ModelFiles files = new ModelFiles(modelDir);
        JsonNode config = files.json("tokenizer_config.json");
        JsonNode specialMap = files.json("special_tokens_map.json");
        // transformers 5 reads special_tokens_map.json only for configs without added_tokens_decoder, and then it wins.
        boolean mapWins = specialMap != null && (config == null || !config.has("added_tokens_decoder"));
        Map<String, String> named = new LinkedHashMap<>();
        for (String key : List.of("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                "mask_token")) {
            String t = tokenText(mapWins ? specialMap.get(key) : null);
            if (t == null) t = tokenText(config == null ? null : config.get(key));
            // transformers would fall back on the tokenizer class's default; the map is the closest thing we have.
            if (t == null && !mapWins) t = tokenText(specialMap == null ? null : specialMap.get(key));
            if (t != null) named.put(key, t);
        }
        JsonNode generation = files.json("generation_config.json");
        JsonNode modelConfig = files.json("config.json");
        int bos = id(named.get("bos_token"), ids, "bos_token_id", generation, modelConfig);
        int eos = id(named.get("eos_token"), ids, "eos_token_id", generation, modelConfig);
        int pad = id(named.get("pad_token"), ids, "pad_token_id", generation, modelConfig);
        if (pad < 0) pad = eos;
        int[] stops = stopIds(eos, generation, modelConfig);

        // transformers skips clean_up_tokenization for BPE models (it would eat spaces before punctuation).
        boolean cleanUp = config != null && config.path("clean_up_tokenization_spaces").asBoolean(false)
                && (!"BPE".equals(v.modelType()) || config
                        .path("clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output").asBoolean());

        ChatTemplate template = files.chatTemplate(config, named);

        HuggingFaceTokenizer hf;
        try {
            // Padding and truncation are done here, per call; DJL's defaults would truncate to 512 tokens.
            hf = HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(text.getBytes(StandardCharsets.UTF_8)),
                    Map.of("addSpecialTokens", "true", "truncation", "false", "padding", "false"));
        } catch (EngineException e) { // the native library itself did not load
            throw new IllegalStateException("cannot load DJL's tokenizers library (set ENGINE_CACHE_DIR to a writable"
                    + " folder if its cache is the problem): " + e.getMessage()
                    + (e.getCause() == null ? "" : ": " + e.getCause().getMessage()), e);
        } catch (IOException | RuntimeException e) {
            throw new ModelFormatException(file + ": the tokenizers library cannot load it: " + e.getMessage(), e);
        }
        return new Tokenizer(modelDir, hf, tokens, ids, v.special(), ids.size(), bos, eos, pad, stops, cleanUp,
                template);
    }

    /**
     * What the Java side needs from {@code tokenizer.json}: token to id (the model's vocabulary, then the added
     * tokens, which win, as in the library), which ids are special, and the model type. Read by streaming past the
     * merges, which are half of a BPE file.
     */
    private record Vocabulary(Map<String, Integer> ids, BitSet special, String modelType) {
        static Vocabulary read(Path file, String text) {
            Map<String, Integer> ids = new HashMap<>();
            BitSet special = new BitSet();
            List<JsonNode> added = new ArrayList<>();
            String type = null;
            boolean vocab = false;
            try (JsonParser p = JSON.createParser(text)) {
                if (p.nextToken() != JsonToken.START_OBJECT)
                    throw new ModelFormatException(file + ": not a JSON object");
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String field = p.currentName();
                    JsonToken value = p.nextToken();
                    if (field.equals("added_tokens") && value == JsonToken.START_ARRAY) {
                        while (p.nextToken() == JsonToken.START_OBJECT) added.add(p.readValueAsTree());
                    } else if (field.equals("model") && value == JsonToken.START_OBJECT) {
                        while (p.nextToken() == JsonToken.FIELD_NAME) {
                            String f = p.currentName();
                            JsonToken t = p.nextToken();
                            if (f.equals("type") && t == JsonToken.VALUE_STRING) {
                                type = p.getText();
                            } else if (f.equals("vocab") && t == JsonToken.START_OBJECT) { // BPE: {token: id}
                                while (p.nextToken() == JsonToken.FIELD_NAME) {
                                    String token = p.currentName();
                                    p.nextToken();
                                    ids.put(token, p.getIntValue());
                                }
                                vocab = true;
                            } else if (f.equals("vocab") && t == JsonToken.START_ARRAY) { // Unigram: [[piece, score]]
                                for (int id = 0; p.nextToken() == JsonToken.START_ARRAY; id++) {
                                    p.nextToken();
                                    ids.put(p.getText(), id);
                                    while (p.nextToken() != JsonToken.END_ARRAY) p.skipChildren();
                                }
                                vocab = true;
                            } else {
                                p.skipChildren();
                            }
                        }
                    } else {
                        p.skipChildren();
                    }
                }
            } catch (JsonProcessingException e) {
                var at = e.getLocation();
                throw new ModelFormatException(file + (at == null ? "" : ":" + at.getLineNr() + ":" + at.getColumnNr())
                        + ": not valid JSON: " + e.getOriginalMessage(), e);
            } catch (IOException e) {
                throw new ModelFormatException(file + ": cannot read: " + e.getMessage(), e);
            }
            if (!vocab)
                throw new ModelFormatException(file + ": field 'model.vocab' is missing or not an object or list");
            for (JsonNode t : added) {
                ids.put(t.path("content").asText(), t.path("id").asInt());
                if (t.path("special").asBoolean()) special.set(t.path("id").asInt());
            }
            return new Vocabulary(ids, special, type);
        }
    }

    private static ModelFormatException missingTokenizerJson(Path dir) {
        boolean bpeFiles = Files.exists(dir.resolve("vocab.json"))
                && Files.exists(dir.resolve("merges.txt"));
        boolean spm = Files.exists(dir.resolve("tokenizer.model"));
        String have = bpeFiles ? " (it has vocab.json and merges.txt)"
                : spm ? " (it has a SentencePiece tokenizer.model)" : "";
        String how = bpeFiles || spm ? "; write one with transformers: python -c \"from transformers import "
                + "AutoTokenizer; AutoTokenizer.from_pretrained('" + dir + "').save_pretrained('" + dir + "')\"" : "";
        return new ModelFormatException(dir + ": no tokenizer.json" + have + how);
    }

    /** The text of a special-token entry: a string, or an AddedToken object's {@code content}. */
    private static String tokenText(JsonNode n) {
        if (n == null || n.isNull()) return null;
        if (n.isTextual()) return n.asText();
        if (n.isObject() && n.path("content").isTextual()) return n.path("content").asText();
        return null;
    }

    private static int id(String token, Map<String, Integer> ids, String field, JsonNode... configs) {
        if (token != null && ids.containsKey(token)) return ids.get(token);
        for (JsonNode c : configs) {
            JsonNode v = c == null ? null : c.get(field);
            if (v != null && v.isArray()) v = v.size() > 0 ? v.get(0) : null;
            if (v != null && v.isIntegralNumber()) return v.asInt();
        }
        return -1;
    }

    private static int[] stopIds(int eos, JsonNode generation, JsonNode modelConfig) {
        List<Integer> out = new ArrayList<>();
        for (JsonNode c : new JsonNode[] {generation, modelConfig}) {
            JsonNode v = c == null ? null : c.get("eos_token_id");
            if (v == null || v.isNull()) continue;
            if (v.isArray()) v.forEach(x -> out.add(x.asInt()));
            else out.add(v.asInt());
            break;
        }
        if (eos >= 0 && !out.contains(eos)) out.add(eos);
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    /** The optional JSON files of a model folder, each parsed with errors that name the file and line. */
    private record ModelFiles(Path dir) {
        JsonNode json(String name) {
            Path p = dir.resolve(name);
            if (!Files.isRegularFile(p)) return null;
            return ConfigJson.read(p).json();
        }

        /** transformers' order: chat_template.jinja, else tokenizer_config.json's chat_template (named "default"). */
        ChatTemplate chatTemplate(JsonNode config, Map<String, String> specialTokens) {
            Path jinja = dir.resolve("chat_template.jinja");
            if (Files.isRegularFile(jinja)) {
                try {
                    return ChatTemplate.of(Files.readString(jinja), jinja.toString(), specialTokens);
                } catch (NoSuchFileException e) {
                    return null;
                } catch (IOException e) {
                    throw new ModelFormatException(jinja + ": cannot read: " + e.getMessage(), e);
                }
            }
            JsonNode t = config == null ? null : config.get("chat_template");
            String source = dir.resolve("tokenizer_config.json") + ": chat_template";
            if (t == null || t.isNull()) return null;
            if (t.isTextual()) return ChatTemplate.of(t.asText(), source, specialTokens);
            if (t.isArray()) {
                for (JsonNode named : t)
                    if ("default".equals(named.path("name").asText()) && named.path("template").isTextual())
                        return ChatTemplate.of(named.path("template").asText(), source + "[default]", specialTokens);
                throw new ModelFormatException(source + ": a list of templates without one named 'default'");
            }
            throw new ModelFormatException(source + ": must be a string or a list of {name, template}, got " + t);
        }
    }

    /** The folder this tokenizer was loaded from. */
    public Path dir() {
        return dir;
    }

    /** {@code text} as token ids, with the special tokens {@code AutoTokenizer(text)} adds for this model. */
    public int[] encode(String text) {
        return encode(text, true);
    }

    /** {@code text} as token ids; {@code addSpecialTokens} as transformers' {@code add_special_tokens}. */
    public int[] encode(String text, boolean addSpecialTokens) {
        Objects.requireNonNull(text, "text");
        return ints(hf.encode(text, addSpecialTokens, false).getIds());
    }

    /** transformers' {@code decode(ids, skip_special_tokens=skipSpecialTokens)}. Unknown ids decode to nothing. */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] l = new long[ids.length];
        for (int i = 0; i < ids.length; i++) l[i] = ids[i];
        String text = hf.decode(l, skipSpecialTokens);
        return cleanUpSpaces ? cleanUpTokenization(text) : text;
    }

    /** transformers' {@code clean_up_tokenization}, applied for non-BPE models that ask for it. */
    private static String cleanUpTokenization(String text) {
        return text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
                .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s")
                .replace(" 've", "'ve").replace(" 're", "'re");
    }

    /** A decoder for generated ids that hands back text as it becomes final. */
    public StreamDecoder streamDecoder(boolean skipSpecialTokens) {
        return new StreamDecoder(this, skipSpecialTokens);
    }

    /** The number of distinct tokens, added tokens included: transformers' {@code len(tokenizer)}. */
    public int vocabSize() {
        return vocabSize;
    }

    /** The token with this id as the vocabulary spells it ({@code "Ġworld"}, {@code "▁the"}), or null if none. */
    public String token(int id) {
        return id >= 0 && id < tokens.length ? tokens[id] : null;
    }

    /** The id of a token as the vocabulary spells it, or -1. */
    public int tokenId(String token) {
        Integer id = ids.get(token);
        return id == null ? -1 : id;
    }

    /** Whether {@code id} is a special token: one that {@code decode(ids, true)} drops. */
    public boolean isSpecial(int id) {
        return id >= 0 && special.get(id);
    }

    /** The beginning-of-sequence id: the tokenizer's {@code bos_token}, else the configs' {@code bos_token_id}. */
    public int bosId() {
        return bos;
    }

    /** The end-of-sequence id: the tokenizer's {@code eos_token}, else the model configs' {@code eos_token_id}. */
    public int eosId() {
        return eos;
    }

    /**
     * The padding id: the tokenizer's {@code pad_token}, else the configs' {@code pad_token_id}, else
     * {@link #eosId()}, as DeepSpeed-Chat pads GPT-2 ({@code tokenizer.pad_token = tokenizer.eos_token}). Padded
     * positions carry a 0 in the attention mask, so the choice does not change what a model computes.
     * (DeepSpeed-Chat's {@code get_tokenizer} sets pad = eos even for models that have a pad token, such as OPT.)
     */
    public int padId() {
        return pad;
    }

    /**
     * The ids that end a reply: {@code generation_config.json}'s {@code eos_token_id} (a number or a list; Llama-3
     * lists {@code <|eot_id|>} there), else {@code config.json}'s, plus {@link #eosId()}.
     */
    public int[] stopIds() {
        return stopIds.clone();
    }

    /** Whether the model folder has a chat template. */
    public boolean hasChatTemplate() {
        return chatTemplate != null;
    }

    /** The model's chat template, or DeepSpeed-Chat's Human/Assistant form ({@link ChatTemplate#dsChat()}). */
    public ChatTemplate chatTemplate() {
        return chatTemplate != null ? chatTemplate : ChatTemplate.dsChat();
    }

    /**
     * The prompt ids of a conversation: {@link #chatTemplate()} applied, then encoded as transformers'
     * {@code apply_chat_template(tokenize=True)} does (no added special tokens for Jinja templates).
     */
    public int[] encodeChat(List<ChatTemplate.Message> messages, boolean addGenerationPrompt) {
        ChatTemplate t = chatTemplate();
        return encode(t.apply(messages, addGenerationPrompt), t.addSpecialTokens());
    }

    // ------------------------------------------------------------------------------------------------ batches

    /** Which end of a row padding goes to. Generation pads on the left, so every prompt ends at the last column. */
    public enum Padding { LEFT, RIGHT }

    /** What to do with a text longer than {@link BatchOptions#maxLength()}. */
    public enum Truncation {
        /** Fail with an {@link IllegalArgumentException} that names the row, its length and the limit. */
        ERROR,
        /** Drop tokens from the start of the text (special tokens are kept), as {@code truncation_side="left"}. */
        LEFT,
        /** Drop tokens from the end of the text (special tokens are kept), as transformers' default. */
        RIGHT
    }

    /**
     * How {@link #encodeBatch} shapes a batch.
     *
     * @param padding which end padding goes to
     * @param maxLength the longest row allowed, in tokens (special tokens included); {@link Integer#MAX_VALUE} for
     *     no limit
     * @param padToMaxLength pad every row to {@code maxLength} columns, else to the longest row
     * @param truncation what to do with longer rows
     * @param addSpecialTokens as transformers' {@code add_special_tokens}
     */
    public record BatchOptions(Padding padding, int maxLength, boolean padToMaxLength, Truncation truncation,
                               boolean addSpecialTokens) {
        public BatchOptions {
            Objects.requireNonNull(padding, "padding");
            Objects.requireNonNull(truncation, "truncation");
            if (maxLength < 1) throw new IllegalArgumentException("maxLength must be at least 1, got " + maxLength);
            if (padToMaxLength && maxLength == Integer.MAX_VALUE)
                throw new IllegalArgumentException("padToMaxLength needs a maxLength");
        }

        /** Prompts for generation: left padding to the longest prompt, an error for a prompt over the limit. */
        public static BatchOptions forGeneration(int maxPromptLength) {
            return new BatchOptions(Padding.LEFT, maxPromptLength, false, Truncation.ERROR, true);
        }

        /**
         * Training sequences, as DeepSpeed-Chat's steps 1 and 2 tokenize them ({@code max_length=max_seq_len,
         * padding="max_length", truncation=True}): right padding to {@code maxSeqLen}, the end cut off.
         */
        public static BatchOptions forTraining(int maxSeqLen) {
            return new BatchOptions(Padding.RIGHT, maxSeqLen, true, Truncation.RIGHT, true);
        }

        public BatchOptions withTruncation(Truncation t) {
            return new BatchOptions(padding, maxLength, padToMaxLength, t, addSpecialTokens);
        }

        public BatchOptions withPadding(Padding p) {
            return new BatchOptions(p, maxLength, padToMaxLength, truncation, addSpecialTokens);
        }

        public BatchOptions withAddSpecialTokens(boolean add) {
            return new BatchOptions(padding, maxLength, padToMaxLength, truncation, add);
        }
    }

    /**
     * A padded batch, row-major: {@code ids[r * columns + c]}; {@code attentionMask} is 1 on tokens, 0 on padding.
     * {@code lengths[r]} is the number of tokens in row {@code r}.
     */
    public record Batch(int rows, int columns, int[] ids, int[] attentionMask, int[] lengths) {
        /** Row {@code r} with its padding. */
        public int[] row(int r) {
            return Arrays.copyOfRange(ids, r * columns, (r + 1) * columns);
        }

        /** Row {@code r} without padding. */
        public int[] tokens(int r) {
            int start = 0;
            while (start < columns && attentionMask[r * columns + start] == 0) start++;
            return Arrays.copyOfRange(ids, r * columns + start, r * columns + start + lengths[r]);
        }
    }

    /**
     * Encodes and pads {@code texts} into one batch. Truncation keeps the special tokens the model adds and cuts
     * the text between them, as transformers does.
     *
     * @throws IllegalArgumentException for a text longer than {@code maxLength} under {@link Truncation#ERROR}
     */
    public Batch encodeBatch(List<String> texts, BatchOptions options) {
        Objects.requireNonNull(options, "options");
        String[] array = texts.toArray(String[]::new);
        for (int i = 0; i < array.length; i++) Objects.requireNonNull(array[i], "text " + i);
        var encodings = hf.batchEncode(array, options.addSpecialTokens(), false);
        int[][] rows = new int[array.length][];
        int columns = 0;
        for (int i = 0; i < rows.length; i++) {
            rows[i] = fit(i, array[i], ints(encodings[i].getIds()), options);
            columns = Math.max(columns, rows[i].length);
        }
        if (options.padToMaxLength()) columns = options.maxLength();
        int n = rows.length;
        int[] ids = new int[n * columns], mask = new int[n * columns], lengths = new int[n];
        if (pad < 0 && n > 0) throw new IllegalStateException(dir + ": no pad or eos token to pad a batch with");
        Arrays.fill(ids, pad);
        for (int r = 0; r < n; r++) {
            int len = rows[r].length, at = r * columns + (options.padding() == Padding.LEFT ? columns - len : 0);
            System.arraycopy(rows[r], 0, ids, at, len);
            Arrays.fill(mask, at, at + len, 1);
            lengths[r] = len;
        }
        return new Batch(n, columns, ids, mask, lengths);
    }

    private int[] fit(int row, String text, int[] ids, BatchOptions o) {
        if (ids.length <= o.maxLength()) return ids;
        if (o.truncation() == Truncation.ERROR)
            throw new IllegalArgumentException("text " + row + " of the batch is " + ids.length
                    + " tokens, longer than the limit of " + o.maxLength() + " tokens");
        // The post-processor wraps the plain encoding in special tokens: find them, cut only the text between.
        int[] plain = o.addSpecialTokens() ? encode(text, false) : ids;
        int at = indexOf(ids, plain);
        if (at < 0) throw new IllegalStateException(dir + ": cannot find the text's tokens among those with special"
                + " tokens added, so it cannot be truncated around them");
        int prefix = at, suffix = ids.length - at - plain.length, keep = o.maxLength() - prefix - suffix;
        if (keep < 0) throw new IllegalArgumentException("maxLength " + o.maxLength() + " leaves no room for the "
                + (prefix + suffix) + " special tokens of text " + row);
        int[] out = new int[o.maxLength()];
        System.arraycopy(ids, 0, out, 0, prefix);
        System.arraycopy(plain, o.truncation() == Truncation.RIGHT ? 0 : plain.length - keep, out, prefix, keep);
        System.arraycopy(ids, at + plain.length, out, prefix + keep, suffix);
        return out;
    }

    private static int indexOf(int[] haystack, int[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++)
                if (haystack[i + j] != needle[j]) continue outer;
            return i;
        }
        return -1;
    }

    private static int[] ints(long[] ids) {
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = Math.toIntExact(ids[i]);
        return out;
    }

    @Override
    public void close() {
        hf.close();
    }

    @Override
    public String toString() {
        return "Tokenizer[" + dir + ", " + vocabSize + " tokens]";
    }
}
