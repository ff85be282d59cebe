package io.github.rlhf4j.tensor;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.NativeException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Bad shapes, dtypes and values raise exceptions that name the op and the shapes: never a crash. */
class BadInputTest {
    private static void fails(Class<? extends Throwable> type, Executable e, String... words) {
        Throwable t = assertThrows(type, e);
        for (String w : words) assertTrue(t.getMessage().contains(w), "message lacks '" + w + "': " + t.getMessage());
    }

    @Test
    void shapeMismatches() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.zeros(DType.F32, 2, 3), b = Tensor.zeros(DType.F32, 4, 5);
            fails(IllegalArgumentException.class, () -> a.matmul(b), "matmul", "[2, 3] f32", "[4, 5] f32", "3 != 4");
            fails(IllegalArgumentException.class, () -> a.add(Tensor.zeros(DType.F32, 3, 2)), "add", "[2, 3]", "[3, 2]");
            fails(IllegalArgumentException.class, () -> Functional.linear(a, Tensor.zeros(DType.F32, 4, 2), null),
                    "linear", "[2, 3] f32", "expects 2");
            fails(IllegalArgumentException.class, () -> a.reshape(4, 2), "reshape", "[2, 3] f32", "[4, 2]");
            fails(IllegalArgumentException.class, () -> a.slice(1, 2, 5), "slice", "[2, 3] f32");
            fails(IllegalArgumentException.class, () -> Functional.layerNorm(a, Tensor.ones(DType.F32, 4), null, 1e-5),
                    "layerNorm", "[4] f32", "[3]");
            Tensor q = Tensor.zeros(DType.F32, 1, 4, 3, 8);
            fails(IllegalArgumentException.class, () -> Functional.attention(q, Tensor.zeros(DType.F32, 1, 4, 2, 8),
                    Tensor.zeros(DType.F32, 1, 4, 2, 8), null, 1, true, 0), "attention", "3 query heads", "2 kv heads");
            fails(IllegalArgumentException.class, () -> Functional.logprobs(a, Tensor.ofInts(new int[] {1, 2, 3}, 3)),
                    "logprobs", "[2, 3] f32", "[3] i32");
            fails(IllegalArgumentException.class, () -> Functional.concat(0, a, Tensor.zeros(DType.F32, 2, 4)),
                    "concat", "dimension 1");
        }
    }

    @Test
    void dtypeMismatches() {
        try (Scope s = Scope.open()) {
            Tensor f = Tensor.zeros(DType.F32, 2), d = Tensor.zeros(DType.F64, 2), i = Tensor.ofInts(new int[] {1, 2});
            fails(IllegalArgumentException.class, () -> f.add(d), "add", "[2] f32", "[2] f64");
            fails(IllegalArgumentException.class, () -> i.exp(), "exp", "[2] i32", "floating-point");
            fails(IllegalArgumentException.class, () -> Functional.embedding(f, Tensor.zeros(DType.F32, 3, 2)),
                    "embedding", "ids", "i32");
        }
    }

    @Test
    void outOfRangeIdsAndTargetsAreNamedByTheBackend() {
        try (Scope s = Scope.open()) {
            Tensor w = Tensor.zeros(DType.F32, 5, 3);
            fails(NativeException.class, () -> Functional.embedding(Tensor.ofInts(new int[] {0, 7, 1}), w),
                    "rlhf4j_embedding_forward", "7");
            Tensor logits = Tensor.zeros(DType.F32, 2, 4);
            fails(NativeException.class, () -> Functional.logprobs(logits, Tensor.ofInts(new int[] {1, 9})),
                    "rlhf4j_logprobs_forward", "9");
            fails(IllegalArgumentException.class, () -> Functional.crossEntropy(logits, Tensor.ofInts(new int[] {-100, -100}), -100),
                    "crossEntropy", "ignore_index");
        }
    }

    @Test
    void badValuesOfArguments() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.zeros(DType.F32, 2, 2);
            fails(IllegalArgumentException.class, () -> Functional.dropout(x, 1.0, 1, 0), "dropout", "p = 1.0");
            fails(IllegalArgumentException.class, () -> Tensor.zeros(DType.F32, 2, -1), "negative size");
            fails(IllegalArgumentException.class, () -> x.transpose(0, 5), "dimension 5");
            fails(IllegalArgumentException.class, () -> Functional.rope(Tensor.zeros(DType.F32, 1, 2, 1, 4),
                    Tensor.ofInts(new int[] {0, 1}, 1, 2), Tensor.zeros(DType.F32, 1), 3), "rotaryDim 3");
        }
    }
}
