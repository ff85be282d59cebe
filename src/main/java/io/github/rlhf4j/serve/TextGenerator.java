package io.github.rlhf4j.serve;

import io.github.rlhf4j.data.ChatTemplate;
import io.github.rlhf4j.data.StreamDecoder;
import io.github.rlhf4j.data.Tokenizer;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.generate.Generator;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * A causal LM with its tokenizer: text in, text out, streamed as it is generated. It is what {@code generate},
 * {@code chat} and the OpenAI-compatible server share: prompts encoded as transformers encodes them, replies decoded
 * incrementally ({@link StreamDecoder}), generation ended at the model's stop ids or at a stop string (the reply is
 * cut before it, and text that may be the start of one is held back until it is known not to be), and timings.
 *
 * <p>Not thread-safe: one generation at a time (the server takes a lock around it).
 */
public final class TextGenerator implements AutoCloseable {
    private final HfModel model;
    private final Tokenizer tokenizer;
    private final Generator generator;
    private final String name;

    /** Wraps a loaded model and its tokenizer; {@link #close()} closes both. */
    public TextGenerator(HfModel model, Tokenizer tokenizer, String name) {
        this.model = Objects.requireNonNull(model, "model");
        this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
        this.generator = new Generator(model.model());
        this.name = Objects.requireNonNull(name, "name");
        if (tokenizer.vocabSize() > model.config().vocabSize())
            throw new IllegalArgumentException(tokenizer.dir() + ": the tokenizer has " + tokenizer.vocabSize()
                    + " tokens but the model's vocab_size is " + model.config().vocabSize()
                    + " (a tokenizer of another model?)");
    }

    /** Loads the model and the tokenizer of a Hugging Face model directory; the name is the directory's. */
    public static TextGenerator load(Path dir, Device device) {
        Tokenizer tokenizer = Tokenizer.load(dir);
        try {
            HfModel model = HfModel.load(dir, device, DType.F32, false);
            try {
                Path fileName = dir.toAbsolutePath().normalize().getFileName();
                return new TextGenerator(model, tokenizer, fileName == null ? dir.toString() : fileName.toString());
            } catch (RuntimeException e) {
                model.close();
                throw e;
            }
        } catch (RuntimeException e) {
            tokenizer.close();
            throw e;
        }
    }

    public HfModel model() {
        return model;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    /** The model's name (its directory's name unless given). */
    public String name() {
        return name;
    }

    /** The longest sequence, prompt and reply, the model can take. */
    public int contextLength() {
        return model.config().maxPositions();
    }

    /** The model's chat template, or DeepSpeed-Chat's Human/Assistant form when it has none. */
    public ChatTemplate chatTemplate() {
        return tokenizer.chatTemplate();
    }

    /** A prompt's ids, with the special tokens the model's tokenizer adds (OPT's {@code </s>}, Llama's {@code <s>}). */
    public int[] encode(String prompt) {
        return tokenizer.encode(prompt);
    }

    /** A conversation's prompt ids, through {@link #chatTemplate()}, ending where the assistant's reply starts. */
    public int[] encodeChat(List<ChatTemplate.Message> messages) {
        return tokenizer.encodeChat(messages, true);
    }

    /** Greedy decoding of up to {@code maxNewTokens}, ending at the model's stop ids. */
    public GenerationConfig greedy(int maxNewTokens) {
        return new GenerationConfig(maxNewTokens, false, 1.0, 0, 1.0, 1.0, tokenizer.stopIds(), padId(), false, 0);
    }

    /** Sampling (top-k 0 = off, top-p 1 = off), ending at the model's stop ids. */
    public GenerationConfig sampling(int maxNewTokens, double temperature, int topK, double topP, long seed) {
        return new GenerationConfig(maxNewTokens, true, temperature, topK, topP, 1.0, tokenizer.stopIds(), padId(),
                false, seed);
    }

    private int padId() {
        int pad = tokenizer.padId();
        return pad >= 0 ? pad : 0; // only fills the masked left padding and finished rows
    }

    /** Why a reply ended, with OpenAI's names: a stop id or stop string ({@code stop}), or max tokens ({@code length}). */
    public enum Finish {
        STOP, LENGTH;

        /** OpenAI's {@code finish_reason}. */
        public String openAi() {
            return this == STOP ? "stop" : "length";
        }
    }

    /**
     * One reply: its text (special tokens skipped, cut before a stop string), the generated ids (a final stop id
     * included), why it ended, the prompt's length, and timings: from the start to the first new token (the prefill
     * pass and one pick) and in all.
     */
    public record Completion(String text, int[] tokens, Finish finish, int promptTokens, long firstTokenNanos,
                             long totalNanos) {
        /** Decode speed: tokens after the first over the time after the first (0 with fewer than two tokens). */
        public double decodeTokensPerSecond() {
            long t = totalNanos - firstTokenNanos;
            return tokens.length > 1 && t > 0 ? (tokens.length - 1) * 1e9 / t : 0;
        }
    }

    /**
     * Generates a reply to {@code prompt}, calling {@code onText} (may be null) with each piece of text as soon as it
     * is final. The pieces concatenate to the returned {@link Completion#text()}. Generation ends at a stop id
     * (unless the config ignores them), at max_new_tokens, or at the first occurrence of one of {@code stops}; the
     * text ends before it. An exception thrown by {@code onText} (a client that went away) ends generation too
     * and propagates.
     */
    public Completion complete(int[] prompt, GenerationConfig config, List<String> stops, Consumer<String> onText) {
        List<String> stopList = stops == null ? List.of() : stops.stream().filter(s -> !s.isEmpty()).toList();
        StreamDecoder decoder = tokenizer.streamDecoder(true);
        Emitter out = new Emitter(stopList, onText);
        List<Integer> tokens = new ArrayList<>();
        long start = System.nanoTime();
        long[] first = {0};
        Finish finish;
        Generator.Result r = generator.generate(prompt, config, (row, token) -> {
            if (tokens.isEmpty()) first[0] = System.nanoTime() - start;
            tokens.add(token);
            if (config.isEos(token)) return true; // ends the reply; its text is not part of it
            return !out.add(decoder.push(token)); // a stop string ends it
        });
        if (r.finish()[0] == Generator.Finish.STOPPED) {
            finish = Finish.STOP;
        } else {
            finish = r.finish()[0] == Generator.Finish.EOS ? Finish.STOP : Finish.LENGTH;
            if (out.add(decoder.finish())) finish = Finish.STOP;
            else out.flush();
        }
        int[] ids = tokens.stream().mapToInt(Integer::intValue).toArray();
        return new Completion(out.text(), ids, finish, prompt.length, first[0], System.nanoTime() - start);
    }

    /**
     * Generates replies to several prompts in one batch (left padding; no streaming, no stop strings). A reply's
     * timings are the batch's.
     */
    public List<Completion> completeBatch(int[][] prompts, GenerationConfig config) {
        long start = System.nanoTime();
        long[] first = {0};
        boolean[] any = {false};
        Generator.Result r = generator.generate(prompts, config, (row, token) -> {
            if (!any[0]) first[0] = System.nanoTime() - start;
            any[0] = true;
            return true;
        });
        long total = System.nanoTime() - start;
        List<Completion> out = new ArrayList<>(prompts.length);
        for (int i = 0; i < prompts.length; i++) {
            int[] t = r.tokens()[i];
            boolean eos = r.finish()[i] == Generator.Finish.EOS;
            String text = tokenizer.decode(eos ? Arrays.copyOf(t, t.length - 1) : t, true);
            out.add(new Completion(text, t, eos ? Finish.STOP : Finish.LENGTH, prompts[i].length, first[0], total));
        }
        return out;
    }

    @Override
    public void close() {
        try {
            model.close();
        } finally {
            tokenizer.close();
        }
    }

    /**
     * The reply's text as it grows: hands on what cannot become part of a stop string, and finds the first stop
     * string. Text handed on never contains the start of a stop string, so a stop can only begin in the held-back
     * tail (searching from there is enough).
     */
    static final class Emitter {
        private final List<String> stops;
        private final Consumer<String> sink;
        private final StringBuilder text = new StringBuilder();
        private int emitted;
        private boolean stopped;

        Emitter(List<String> stops, Consumer<String> sink) {
            this.stops = stops;
            this.sink = sink;
        }

        /** Appends {@code piece}; returns true when the text now contains a stop string (it is cut there). */
        boolean add(String piece) {
            if (stopped) return true;
            text.append(piece);
            int cut = -1;
            for (String s : stops) {
                int at = text.indexOf(s, emitted);
                if (at >= 0 && (cut < 0 || at < cut)) cut = at;
            }
            if (cut >= 0) {
                text.setLength(cut);
                stopped = true;
                emitUpTo(cut);
                return true;
            }
            emitUpTo(text.length() - heldBack());
            return false;
        }

        /** Hands on the held-back tail (the reply ended without a stop string). */
        void flush() {
            emitUpTo(text.length());
        }

        /** The text handed on so far: the whole reply once it has ended. */
        String text() {
            return text.substring(0, emitted);
        }

        private boolean endsWith(String s, int k) {
            int off = text.length() - k;
            for (int i = 0; i < k; i++) if (text.charAt(off + i) != s.charAt(i)) return false;
            return true;
        }

        /** The length of the longest tail of the text that is the start of a stop string. */
        private int heldBack() {
            int best = 0;
            for (String s : stops)
                for (int k = Math.min(s.length() - 1, text.length() - emitted); k > best; k--)
                    if (endsWith(s, k)) {
                        best = k;
                        break;
                    }
            return best;
        }

        private void emitUpTo(int end) {
            if (end <= emitted) return;
            String piece = text.substring(emitted, end);
            emitted = end;
            if (sink != null) sink.accept(piece);
        }
    }
}
