package io.github.rlhf4j.rlhf;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.model.ConfigJson;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.SplittableRandom;

/**
 * The embedded demo task of {@code bin/rlhf4j train} without model flags: a dialogue whose answers a program can check.
 * The human asks to reverse a word of 3 to 6 letters from a-j; the right answer is the word reversed. Preference
 * pairs put the right answer (chosen) against a plausible wrong one (rejected): the word unreversed, one letter
 * changed, two neighbours swapped, a letter dropped or added, the answer running on, or unrelated letters (the last
 * two so that a reward model cannot be won over by long answers). A 15-token tokenizer ships in the jar.
 *
 * <pre>
 * \n\nHuman: reverse cabd\n\nAssistant: dbac&lt;|endoftext|&gt;
 * </pre>
 */
public final class DemoTask {
    static final String LETTERS = "abcdefghij";
    static final String HUMAN = "\n\nHuman: reverse ", ASSISTANT = "\n\nAssistant:";
    private static final ObjectMapper JSON = new ObjectMapper();

    private DemoTask() {}

    public static String prompt(String word) {
        return HUMAN + word + ASSISTANT;
    }

    public static String answer(String word) {
        return " " + new StringBuilder(word).reverse();
    }

    /** Whether {@code answer} (the generated text, special tokens removed) is the prompt's word reversed. */
    public static boolean check(String prompt, String answer) {
        if (!prompt.startsWith(HUMAN) || !prompt.endsWith(ASSISTANT)) return false;
        String word = prompt.substring(HUMAN.length(), prompt.length() - ASSISTANT.length());
        return answer.strip().equals(new StringBuilder(word).reverse().toString());
    }

    static String word(SplittableRandom r) {
        int n = 3 + r.nextInt(4);
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < n; i++) b.append(LETTERS.charAt(r.nextInt(LETTERS.length())));
        return b.toString();
    }

    /** A plausible wrong answer to {@code word}. */
    static String wrong(String word, SplittableRandom r) {
        String right = new StringBuilder(word).reverse().toString();
        while (true) {
            StringBuilder w = new StringBuilder(right);
            switch (r.nextInt(7)) {
                case 0 -> w = new StringBuilder(word);
                case 1 -> w.setCharAt(r.nextInt(w.length()), LETTERS.charAt(r.nextInt(LETTERS.length())));
                case 2 -> {
                    int i = r.nextInt(w.length() - 1);
                    char c = w.charAt(i);
                    w.setCharAt(i, w.charAt(i + 1));
                    w.setCharAt(i + 1, c);
                }
                case 3 -> w.deleteCharAt(r.nextInt(w.length()));
                case 4 -> w.insert(r.nextInt(w.length() + 1), LETTERS.charAt(r.nextInt(LETTERS.length())));
                case 5 -> { // the right answer running on
                    for (int k = 1 + r.nextInt(4); k > 0; k--) w.append(LETTERS.charAt(r.nextInt(LETTERS.length())));
                }
                default -> { // letters with no relation to the word
                    w.setLength(0);
                    for (int k = 2 + r.nextInt(8); k > 0; k--) w.append(LETTERS.charAt(r.nextInt(LETTERS.length())));
                }
            }
            if (!w.toString().equals(right)) return " " + w;
        }
    }

    /** Writes {@code rows} preference rows in the rm-static schema (prompt, response, chosen, rejected). */
    public static void writeData(Path file, int rows, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < rows; i++) {
            String w = word(r);
            ObjectNode row = JSON.createObjectNode();
            row.put("prompt", prompt(w));
            row.put("response", answer(w));
            row.put("chosen", answer(w));
            row.put("rejected", wrong(w, r));
            out.append(row).append('\n');
        }
        write(file, out.toString());
    }

    /** Copies the demo tokenizer (tokenizer.json, tokenizer_config.json) into {@code dir}. */
    public static void writeTokenizer(Path dir) {
        for (String f : new String[] {"tokenizer.json", "tokenizer_config.json"})
            try (InputStream in = DemoTask.class.getResourceAsStream("/io/github/rlhf4j/demo/" + f)) {
                if (in == null) throw new IllegalStateException("demo resource " + f + " missing from the jar");
                write(dir.resolve(f), new String(in.readAllBytes(), StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
    }

    /** A tiny GPT-2 for the task (about 0.1M parameters), dropout off. */
    public static ConfigJson modelConfig(int nEmbd, int nLayer, int nHead) {
        return ConfigJson.parse("demo config", """
                {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 16, "n_positions": 32,
                 "n_embd": %d, "n_layer": %d, "n_head": %d, "activation_function": "gelu_new",
                 "embd_pdrop": 0.0, "resid_pdrop": 0.0, "attn_pdrop": 0.0, "layer_norm_epsilon": 1e-5,
                 "initializer_range": 0.02, "bos_token_id": 0, "eos_token_id": 0}""".formatted(nEmbd, nLayer, nHead));
    }

    private static void write(Path file, String text) {
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
            Files.writeString(tmp, text);
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }
}
