package io.github.rlhf4j.rlhf;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.data.DataSplit;
import io.github.rlhf4j.data.Phase;
import io.github.rlhf4j.data.SplitSpec;
import io.github.rlhf4j.data.TextEncoder;
import io.github.rlhf4j.data.Tokenizer;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.generate.Generator;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The embedded demo task of {@code bin/rlhf4j train} without model flags: a dialogue whose answers a program can check.
 * The human asks to reverse a word of 3 to 6 letters from a-j; the right answer is the word reversed. Preference
 * pairs put the right answer (chosen) against a plausible wrong one (rejected): the word unreversed, one letter
 * changed, two neighbours swapped, a letter dropped or added, the answer running on, or unrelated letters (the last
 * two so that a reward model cannot be won over by long answers). A 15-token tokenizer ships in the jar.
 *
 * <p>As in InstructGPT, demonstrations are imperfect and comparisons reliable: the rows step 1 reads (it imitates
 * their {@code chosen} answer) are right only some of the time, wrong ones drawn from the same generator as the
 * rejected answers, while every comparison step 2 reads puts a right answer first ({@link #writeData}). The data
 * stay one file in one schema and the noise goes only into step 1's rows, found through {@link DataSplit} itself,
 * so {@code --data-split} needs nothing demo-specific. After step 1, {@link #useOwnMistakes} puts the SFT actor's
 * own wrong answers into step 2's comparisons. The SFT actor then answers right only part of the time when it
 * samples, and PPO, rewarded by a reward model trained on that actor's own mistakes, has room to raise it.
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

    /**
     * Writes {@code rows} preference rows in the rm-static schema (prompt, response, chosen, rejected): noisy
     * demonstrations, reliable comparisons. The rows that {@code split} (with {@code seed}, as {@link DataSplit}
     * assigns them) gives to step 1 have a right {@code chosen} answer with probability {@code demoCorrect} only, and
     * otherwise one of {@link #wrong}'s; every other row's {@code chosen} is right. Step 1 imitates {@code chosen},
     * so the SFT actor learns to answer right about {@code demoCorrect} of the time; steps 2 and 3 see only right
     * chosen answers, so the reward model learns right from wrong and PPO has something to improve (InstructGPT's
     * premise: demonstrations are imperfect, comparisons are easier to get right). The rows are written twice: the
     * first pass fixes the row count, from which the split is computed.
     */
    public static void writeData(Path file, int rows, long seed, String split, double demoCorrect) {
        if (!(demoCorrect >= 0 && demoCorrect <= 1))
            throw new IllegalArgumentException("demoCorrect = " + demoCorrect + " must be in [0, 1]");
        write(file, rows(rows, seed, new boolean[rows], demoCorrect));
        DataSplit ds = DataSplit.load(List.of(file), SplitSpec.parse(split), seed, null);
        boolean[] sft = new boolean[rows];
        for (DataSplit.Part part : DataSplit.Part.values())
            for (int i : ds.indices(ds.datasets().getFirst(), Phase.SFT, part)) sft[i] = true;
        write(file, rows(rows, seed, sft, demoCorrect));
    }

    private static String rows(int rows, long seed, boolean[] noisy, double demoCorrect) {
        SplittableRandom r = new SplittableRandom(seed), noise = new SplittableRandom(seed + 1);
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < rows; i++) {
            String w = word(r);
            String rejected = wrong(w, r);
            String chosen = noisy[i] && noise.nextDouble() >= demoCorrect ? wrong(w, noise) : answer(w);
            ObjectNode row = JSON.createObjectNode();
            row.put("prompt", prompt(w));
            row.put("response", chosen);
            row.put("chosen", chosen);
            row.put("rejected", rejected);
            out.append(row).append('\n');
        }
        return out.toString();
    }

    /**
     * Puts the SFT actor's own mistakes into the comparisons: for each row {@code split} gives to step 2's training,
     * the actor (in {@code actorDir}) answers the prompt once at temperature 1, and a wrong, non-blank answer
     * replaces the row's {@code rejected}. The reward model then learns to tell right from the very mistakes PPO
     * starts from, not only from {@link #wrong}'s; without them PPO found wrong answers the reward model scored high.
     * Sampling is seeded, so a resumed run rewrites the same file.
     *
     * @return how many rejected answers were replaced
     */
    public static int useOwnMistakes(Path file, String split, long seed, Path actorDir, int maxAnswer) {
        DataSplit ds = DataSplit.load(List.of(file), SplitSpec.parse(split), seed, null);
        int[] reward = ds.indices(ds.datasets().getFirst(), Phase.REWARD, DataSplit.Part.TRAIN);
        List<String> lines;
        try {
            lines = new ArrayList<>(Files.readAllLines(file));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        int replaced = 0;
        try (Tokenizer tok = Tokenizer.load(actorDir);
             HfModel actor = HfModel.load(actorDir, Device.cpu(), DType.F32, false)) {
            actor.model().train(false);
            GenerationConfig sample = GenerationConfig.sampling(maxAnswer, 1.0, 0, 1.0, tok.eosId(),
                    TextEncoder.dsChat(tok).padId(), seed + 7);
            for (int at = 0; at < reward.length; at += 64) {
                int n = Math.min(64, reward.length - at);
                ObjectNode[] rows = new ObjectNode[n];
                int[][] prompts = new int[n][];
                for (int i = 0; i < n; i++) {
                    rows[i] = (ObjectNode) JSON.readTree(lines.get(reward[at + i]));
                    prompts[i] = tok.encode(rows[i].get("prompt").asText(), false);
                }
                Generator.Result r = new Generator(actor.model()).generate(prompts, sample, null);
                for (int i = 0; i < n; i++) {
                    String answer = tok.decode(r.tokens()[i], true);
                    if (answer.isBlank() || check(rows[i].get("prompt").asText(), answer)) continue;
                    rows[i].put("rejected", answer);
                    lines.set(reward[at + i], rows[i].toString());
                    replaced++;
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot parse " + file + ": " + e.getMessage(), e);
        }
        write(file, String.join("\n", lines) + "\n");
        return replaced;
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
