package io.github.rlhf4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;

/** samples.expected.json: DeepSpeed-Chat's samples made with transformers, and the rows they were made from. */
final class SampleFixtures {
    private SampleFixtures() {}

    static final List<String> TOKENIZERS = List.of("gpt2", "opt_style");

    static JsonNode all() {
        return DataFixtures.expected("samples.expected.json");
    }

    static JsonNode of(String tokenizer) {
        return all().get("tokenizers").get(tokenizer);
    }

    static TextEncoder encoder(String tokenizer) {
        return TextEncoder.dsChat(TokenizerFixtures.tokenizer(tokenizer));
    }

    static int maxSeqLen() {
        return all().get("max_seq_len").asInt();
    }

    static int maxPromptSeqLen() {
        return all().get("max_prompt_seq_len").asInt();
    }

    /** The rm-static fixture rows, in file order. */
    static Rows<PreferenceRow> pairs() {
        return Dataset.load(DataFixtures.file("rm-static.jsonl")).pairs();
    }

    /** The prompts of the rm-static fixture, then those of prompts.jsonl, as one list in that order. */
    static Rows<PromptRow> prompts() {
        Rows<PromptRow> a = Dataset.load(DataFixtures.file("rm-static.jsonl")).prompts();
        Rows<PromptRow> b = Dataset.load(DataFixtures.file("prompts.jsonl")).prompts();
        List<PromptRow> rows = new ArrayList<>(a);
        rows.addAll(b);
        List<RowPosition> at = new ArrayList<>();
        for (int i = 0; i < a.size(); i++) at.add(a.position(i));
        for (int i = 0; i < b.size(); i++) at.add(b.position(i));
        return Rows.of(rows, at);
    }
}
