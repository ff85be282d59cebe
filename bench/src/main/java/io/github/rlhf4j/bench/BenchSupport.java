package io.github.rlhf4j.bench;

import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.ModelConfig;
import io.github.rlhf4j.model.Models;
import io.github.rlhf4j.runtime.Abi;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/** What several benchmarks share: the model presets, deterministic tokens, "AxBxC" shape parameters, output checks. */
final class BenchSupport {
    private BenchSupport() {}

    /**
     * A model config by preset name: "tiny" (GPT-2, 4 layers x 256, 4 heads, vocab 512, 128 positions: 3.3M
     * parameters), "tiny-opt" (OPT of the same shape), "gpt2" (GPT-2 small, 124M), "opt-1.3b" (OPT-1.3B's shape).
     */
    static ModelConfig config(String model) {
        return switch (model) {
            case "tiny", "gpt2" -> TrainStepBenchmark.config(model);
            case "tiny-opt" -> Models.config(ConfigJson.parse("tiny-opt", TINY_OPT));
            case "opt-1.3b" -> Models.config(ConfigJson.parse("opt-1.3b", DecodeBenchmark.OPT_1_3B));
            default -> throw new IllegalArgumentException("model '" + model
                    + "': expected tiny, tiny-opt, gpt2 or opt-1.3b");
        };
    }

    /** An OPT config.json with the tiny GPT-2's shape (pre-LN, relu, learned positions). */
    static final String TINY_OPT = """
            {"model_type": "opt", "vocab_size": 512, "hidden_size": 256, "num_hidden_layers": 4, "ffn_dim": 1024,
             "num_attention_heads": 4, "max_position_embeddings": 128, "word_embed_proj_dim": 256,
             "do_layer_norm_before": true, "activation_function": "relu", "enable_bias": true,
             "pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 2, "dropout": 0.0, "attention_dropout": 0.0}""";

    /**
     * {@code n} deterministic token ids in [0, bound): (i + shift) * 7919 mod bound, the sequence of
     * {@link TrainStepBenchmark#tokens} (bound = vocab there; vocab - 1 here keeps the last id free as the pad).
     */
    static int[] tokens(int n, int bound, int shift) {
        return TrainStepBenchmark.tokens(n, bound, shift);
    }

    /** "4x128x512" as {4, 128, 512}; {@code what} names the parameter and its layout in the error. */
    static int[] shape(String value, int parts, String what) {
        String[] s = value.split("x");
        if (s.length != parts) throw new IllegalArgumentException(what + " '" + value + "': expected " + parts + " sizes");
        int[] out = new int[parts];
        for (int i = 0; i < parts; i++) {
            try {
                out[i] = Integer.parseInt(s[i]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(what + " '" + value + "': '" + s[i] + "' is not a size", e);
            }
            if (out[i] <= 0) throw new IllegalArgumentException(what + " '" + value + "': sizes must be > 0");
        }
        return out;
    }

    /** "fwd" -> false, "fwdbwd" -> true. */
    static boolean backward(String pass) {
        return switch (pass) {
            case "fwd" -> false;
            case "fwdbwd" -> true;
            default -> throw new IllegalArgumentException("pass '" + pass + "': expected fwd or fwdbwd");
        };
    }

    /**
     * Refuses to time a computation whose output holds a NaN or an Inf (outputs are NaN-poisoned first where the
     * benchmark writes into preallocated buffers): a fast wrong result is not a result.
     */
    static void requireFinite(String what, Tensor t) {
        float[] v = t.toFloatArray();
        for (int i = 0; i < v.length; i++)
            if (!Float.isFinite(v[i]))
                throw new IllegalStateException(what + ": element " + i + " of " + t.describe() + " is " + v[i]
                        + " (unwritten or not finite)");
    }

    /** The same for a loss or another scalar read back. */
    static double requireFinite(String what, double x) {
        if (!Double.isFinite(x)) throw new IllegalStateException(what + " is " + x);
        return x;
    }

    /**
     * Device buffers for the kernel-level ({@code api=abi}) benchmarks, freed together: raw allocations on a device,
     * filled through the ABI, checked by a copy back to the host.
     */
    static final class Buffers implements AutoCloseable {
        final Device dev;
        final Abi abi;
        final long stream;
        private final List<Long> owned = new ArrayList<>();

        Buffers(Device dev) {
            this.dev = dev;
            this.abi = dev.abi();
            this.stream = dev.stream();
        }

        long alloc(long bytes) {
            long p = abi.malloc(dev.handle(), bytes);
            owned.add(p);
            return p;
        }

        /** n elements of {@code type}, normal(mean, std) from Philox(seed). */
        long normal(DType type, long n, double mean, double std, long seed) {
            long p = alloc(n * type.size);
            abi.fillRandom(stream, type.code, n, p, 1, mean, std, seed, 0);
            return p;
        }

        /** I32 values copied from the host. */
        long ints(int[] values) {
            long p = alloc(4L * values.length);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment host = arena.allocateFrom(ValueLayout.JAVA_INT, values);
                abi.memcpy(stream, p, host.address(), 4L * values.length, 0);
                abi.streamSynchronize(stream);
            }
            return p;
        }

        void poison(DType type, long n, long p) {
            abi.fill(stream, type.code, n, p, Double.NaN);
        }

        /** Every one of the n elements at {@code p} must be finite (F32 or BF16). */
        void requireFinite(String what, DType type, long n, long p) {
            abi.streamSynchronize(stream);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment host = arena.allocate(n * type.size, 8);
                abi.memcpy(stream, host.address(), p, n * type.size, 1);
                abi.streamSynchronize(stream);
                for (long j = 0; j < n; j++) {
                    float x = type == DType.BF16
                            ? Float.intBitsToFloat((host.getAtIndex(ValueLayout.JAVA_SHORT, j) & 0xFFFF) << 16)
                            : host.getAtIndex(ValueLayout.JAVA_FLOAT, j);
                    if (!Float.isFinite(x))
                        throw new IllegalStateException(what + "[" + j + "] = " + x + " (unwritten or not finite)");
                }
            }
        }

        @Override
        public void close() {
            for (long p : owned) abi.free(dev.handle(), p);
            owned.clear();
        }
    }
}
