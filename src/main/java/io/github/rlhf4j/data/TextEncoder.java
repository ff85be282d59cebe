package io.github.rlhf4j.data;

import io.github.rlhf4j.data.Tokenizer.BatchOptions;
import io.github.rlhf4j.data.Tokenizer.Padding;
import io.github.rlhf4j.data.Tokenizer.Truncation;
import java.util.List;
import java.util.Objects;

/**
 * The tokenizer and the two conventions every step's samples share: the end-of-conversation text appended to step-1
 * and step-2 texts, and the id that pads batches.
 *
 * @param tokenizer the actor's tokenizer
 * @param endOfConversationToken appended to prompt + answer in steps 1 and 2 (DeepSpeed-Chat's
 *     {@code --end_of_conversation_token}); tokenized as text, so it is one special token only where the tokenizer
 *     has it ({@code <|endoftext|>} is GPT-2's EOS)
 * @param padId the id in padded positions (their attention mask is 0)
 */
public record TextEncoder(Tokenizer tokenizer, String endOfConversationToken, int padId) {
    /** DeepSpeed-Chat's default {@code --end_of_conversation_token}. */
    public static final String DS_CHAT_EOT = "<|endoftext|>";

    /** Tokenizer calls go in chunks of this many texts. */
    private static final int CHUNK = 256;

    public TextEncoder {
        Objects.requireNonNull(tokenizer, "tokenizer");
        Objects.requireNonNull(endOfConversationToken, "endOfConversationToken");
        if (padId < 0) throw new IllegalArgumentException("padId must be a token id, got " + padId);
    }

    /**
     * DeepSpeed-Chat's settings: {@code <|endoftext|>} appended, and padding with the EOS id, as its
     * {@code get_tokenizer} sets {@code pad_token = eos_token} (even for OPT, whose own pad token differs; the reward
     * model's end-of-answer search relies on it). Falls back on {@link Tokenizer#padId()} without an EOS.
     */
    public static TextEncoder dsChat(Tokenizer tokenizer) {
        int eos = tokenizer.eosId();
        return new TextEncoder(tokenizer, DS_CHAT_EOT, eos >= 0 ? eos : tokenizer.padId());
    }

    public TextEncoder withEndOfConversationToken(String token) {
        return new TextEncoder(tokenizer, token, padId);
    }

    public TextEncoder withPadId(int id) {
        return new TextEncoder(tokenizer, endOfConversationToken, id);
    }

    /**
     * How many pad ids the tokenizer puts before every text: DeepSpeed-Chat's {@code num_padding_at_beginning}, 1 for
     * OPT (its tokenizer starts each text with {@code </s>}, which is also the pad id once pad = EOS) and 0 for GPT-2,
     * Llama and most others. The reward model's end-of-answer search skips that many pads. Found by encoding a
     * short text rather than by model family, so a tokenizer with its own conventions gets the right value.
     */
    public int paddingAtBeginning() {
        int[] ids = encode(List.of("a"), Integer.MAX_VALUE)[0];
        int n = 0;
        while (n < ids.length && ids[n] == padId) n++;
        return n;
    }

    /**
     * Each text as transformers' {@code tokenizer(text, max_length=maxLength, truncation=True)} encodes it: special
     * tokens added, the end cut off past {@code maxLength} (special tokens kept), no padding.
     *
     * @param maxLength the longest result, or {@link Integer#MAX_VALUE} for no truncation
     */
    int[][] encode(List<String> texts, int maxLength) {
        int[][] out = new int[texts.size()][];
        BatchOptions options = new BatchOptions(Padding.RIGHT, maxLength, false, Truncation.RIGHT, true);
        for (int start = 0; start < texts.size(); start += CHUNK) {
            List<String> chunk = texts.subList(start, Math.min(texts.size(), start + CHUNK));
            Tokenizer.Batch b = tokenizer.encodeBatch(chunk, options);
            for (int r = 0; r < chunk.size(); r++) out[start + r] = b.tokens(r);
        }
        return out;
    }
}
