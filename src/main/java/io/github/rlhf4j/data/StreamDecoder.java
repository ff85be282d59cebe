package io.github.rlhf4j.data;

import java.util.Arrays;

/**
 * Decodes generated ids one at a time, handing back only text that later tokens cannot change, so a chat can print
 * as it generates: the text of all {@link #push} results followed by {@link #finish()} equals
 * {@code tokenizer.decode(allIds, skipSpecialTokens)}.
 *
 * <p>Two things make the text of one token depend on its neighbours. A byte-level BPE or byte-fallback token can
 * hold part of a UTF-8 character (an emoji is often 2-4 tokens), which decodes to U+FFFD until the rest arrives;
 * and SentencePiece-style decoders strip the leading space of the first token they see. This is the incremental
 * scheme of Hugging Face's text-generation-inference and vLLM: decode a short window that starts a few tokens
 * back ({@code prefixOffset}) twice, without and with the new tokens, and emit the difference once it does not end
 * in U+FFFD. Each push decodes a window of a few tokens, not the whole text.
 *
 * <p>Not thread-safe; one decoder per generated sequence.
 */
public final class StreamDecoder {
    private final Tokenizer tokenizer;
    private final boolean skipSpecialTokens;
    private int[] ids = new int[64];
    private int size;
    private int prefixOffset; // start of the window decoded for context
    private int readOffset;   // end of the text already handed back

    StreamDecoder(Tokenizer tokenizer, boolean skipSpecialTokens) {
        this.tokenizer = tokenizer;
        this.skipSpecialTokens = skipSpecialTokens;
    }

    /** Adds one generated id; returns the text that became final with it (often empty, never null). */
    public String push(int id) {
        if (size == ids.length) ids = Arrays.copyOf(ids, size * 2);
        ids[size++] = id;
        String prefix = decode(prefixOffset, readOffset);
        String text = decode(prefixOffset, size);
        if (text.length() > prefix.length() && !text.endsWith("\uFFFD") && text.startsWith(prefix)) {
            prefixOffset = readOffset;
            readOffset = size;
            return text.substring(prefix.length());
        }
        return "";
    }

    /** Adds several ids; returns the text that became final with them. */
    public String push(int... newIds) {
        StringBuilder out = new StringBuilder();
        for (int id : newIds) out.append(push(id));
        return out.toString();
    }

    /** Ends the sequence: returns what is left, including an incomplete character as U+FFFD, as decode does. */
    public String finish() {
        String prefix = decode(prefixOffset, readOffset);
        String text = decode(prefixOffset, size);
        prefixOffset = readOffset = size;
        return text.length() > prefix.length() ? text.substring(prefix.length()) : "";
    }

    /** Every id pushed so far. */
    public int[] ids() {
        return Arrays.copyOf(ids, size);
    }

    private String decode(int from, int to) {
        return from == to ? "" : tokenizer.decode(Arrays.copyOfRange(ids, from, to), skipSpecialTokens);
    }
}
