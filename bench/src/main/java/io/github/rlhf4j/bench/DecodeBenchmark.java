package io.github.rlhf4j.bench;

import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.generate.Generator;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.ModelConfig;
import io.github.rlhf4j.model.Models;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.Device;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Batched generation on the CPU backend: a {@code prompt}-token prompt per row, then {@code newTokens} greedy tokens
 * through the KV cache (EOS ignored, so every run makes the same number of tokens). One op = one whole generate call,
 * prefill included; tokens/s = batch x newTokens / time. The peer is bench/peers/torch_decode.py: transformers'
 * {@code generate} on GPT2LMHeadModel with the same config, tokens and thread count (bench/cpu/decode.sh runs both).
 *
 * <p>Floor: a decode step reads every weight once (124M x 4 bytes = 498 MB for GPT-2 small in fp32) plus the KV cache
 * (2 x 12 layers x 768 x 4 bytes = 74 KB per cached token and row), so at batch 1 it is memory-bound: 498 MB over the
 * machine's DRAM bandwidth per token; the 0.25 GFLOP per token are ~1 ms at the fp32 ceiling.
 */
@State(org.openjdk.jmh.annotations.Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 1, time = 10)
@Measurement(iterations = 3, time = 10)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class DecodeBenchmark {
    /**
     * "tiny": 4 layers x 256, vocab 512 (3.3M parameters); "gpt2": GPT-2 small (124M); "opt-1.3b": OPT-1.3B's
     * shape (the GPU benchmark of bench/gpu/decode.sh).
     */
    @Param({"gpt2"})
    public String model;

    /** "cpu" or "cuda:N". */
    @Param({"cpu"})
    public String device;

    @Param({"1"})
    public int batch;

    @Param({"64"})
    public int prompt;

    @Param({"64"})
    public int newTokens;

    @Param({"2"})
    public int threads;

    private CausalLM gpt;
    private ParameterStore store;
    private int[][] prompts;
    private GenerationConfig config;

    @Setup(Level.Trial)
    public void setup() {
        Device dev = Device.parse(device);
        if (dev.isCpu()) dev.setNumThreads(threads);
        ModelConfig cfg = model.equals("opt-1.3b") ? Models.config(ConfigJson.parse("opt-1.3b", OPT_1_3B))
                : TrainStepBenchmark.config(model);
        gpt = CausalLM.of(cfg);
        store = ParameterStore.allocate(gpt, dev, DType.F32, 1, false);
        gpt.train(false);
        prompts = new int[batch][];
        for (int b = 0; b < batch; b++) prompts[b] = TrainStepBenchmark.tokens(prompt, cfg.vocabSize(), b * prompt);
        config = GenerationConfig.greedy(newTokens, cfg.vocabSize() - 1, cfg.vocabSize() - 1).withIgnoreEos(true);
    }

    /** facebook/opt-1.3b's config.json (the fields rlhf4j reads). */
    static final String OPT_1_3B = """
            {"model_type": "opt", "vocab_size": 50272, "hidden_size": 2048, "num_hidden_layers": 24, "ffn_dim": 8192,
             "num_attention_heads": 32, "max_position_embeddings": 2048, "word_embed_proj_dim": 2048,
             "do_layer_norm_before": true, "activation_function": "relu", "enable_bias": true,
             "pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 2, "dropout": 0.0, "attention_dropout": 0.0}""";

    @Benchmark
    public int generate() {
        return new Generator(gpt).generate(prompts, config, null).tokens()[0].length;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        store.close();
    }
}
