package io.github.rlhf4j.tensor;

import static java.util.Map.entry;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.runtime.DType;
import java.util.List;
import java.util.Map;

/**
 * Every differentiable op of rlhf4j as a function of a list of inputs and the attributes of a fixture case
 * (src/test/python/make_op_fixtures.py makes the same cases with PyTorch). One table, two checks: against PyTorch
 * (TorchParityTest) and against central differences (GradientCheckTest).
 */
final class OpCases {
    private OpCases() {}

    interface Op {
        Tensor apply(List<Tensor> in, JsonNode attrs);
    }

    static final Map<String, Op> OPS = Map.ofEntries(
            // unary
            entry("exp", (in, a) -> in.get(0).exp()),
            entry("log", (in, a) -> in.get(0).log()),
            entry("sqrt", (in, a) -> in.get(0).sqrt()),
            entry("square", (in, a) -> in.get(0).square()),
            entry("abs", (in, a) -> in.get(0).abs()),
            entry("neg", (in, a) -> in.get(0).neg()),
            entry("mulScalar", (in, a) -> in.get(0).mul(a.get("c").asDouble())),
            entry("addScalar", (in, a) -> in.get(0).add(a.get("c").asDouble())),
            entry("sigmoid", (in, a) -> Functional.sigmoid(in.get(0))),
            entry("tanh", (in, a) -> in.get(0).tanh()),
            entry("relu", (in, a) -> Functional.relu(in.get(0))),
            entry("gelu", (in, a) -> Functional.gelu(in.get(0))),
            entry("geluTanh", (in, a) -> Functional.geluTanh(in.get(0))),
            entry("silu", (in, a) -> Functional.silu(in.get(0))),
            entry("logSigmoid", (in, a) -> Functional.logSigmoid(in.get(0))),
            entry("clamp", (in, a) -> in.get(0).clamp(a.get("min").asDouble(), a.get("max").asDouble())),
            // binary, broadcasting
            entry("add", (in, a) -> in.get(0).add(in.get(1))),
            entry("sub", (in, a) -> in.get(0).sub(in.get(1))),
            entry("mul", (in, a) -> in.get(0).mul(in.get(1))),
            entry("div", (in, a) -> in.get(0).div(in.get(1))),
            entry("maximum", (in, a) -> in.get(0).maximum(in.get(1))),
            entry("minimum", (in, a) -> in.get(0).minimum(in.get(1))),
            // reductions
            entry("sum", (in, a) -> in.get(0).sum()),
            entry("mean", (in, a) -> in.get(0).mean()),
            entry("sumDim", (in, a) -> in.get(0).sum(a.get("dim").asInt(), a.get("keepDim").asBoolean())),
            entry("meanDim", (in, a) -> in.get(0).mean(a.get("dim").asInt(), a.get("keepDim").asBoolean())),
            entry("maskedSum", (in, a) -> Functional.maskedSum(in.get(0), in.get(1))),
            entry("maskedMean", (in, a) -> Functional.maskedMean(in.get(0), in.get(1))),
            entry("maskedSumLastDim", (in, a) -> Functional.maskedSumLastDim(in.get(0), in.get(1))),
            entry("maskedMeanLastDim", (in, a) -> Functional.maskedMeanLastDim(in.get(0), in.get(1))),
            // views and copies
            entry("reshape", (in, a) -> in.get(0).reshape(ints(a.get("shape")))),
            entry("transpose", (in, a) -> in.get(0).transpose(a.get("dim0").asInt(), a.get("dim1").asInt()).contiguous()),
            entry("permute", (in, a) -> in.get(0).permute(ints(a.get("dims"))).contiguous()),
            entry("slice", (in, a) -> in.get(0).slice(a.get("dim").asInt(), a.get("start").asInt(), a.get("end").asInt())
                    .contiguous()),
            entry("select", (in, a) -> in.get(0).select(a.get("dim").asInt(), a.get("index").asInt()).contiguous()),
            entry("unsqueeze", (in, a) -> in.get(0).unsqueeze(a.get("dim").asInt())),
            entry("expand", (in, a) -> in.get(0).expand(ints(a.get("shape"))).contiguous()),
            entry("concat", (in, a) -> Functional.concat(a.get("dim").asInt(), in.toArray(Tensor[]::new))),
            entry("transposeReshape", (in, a) -> in.get(0).transpose(1, 2).reshape(2, 12)),
            // matrix products
            entry("matmul", (in, a) -> in.get(0).matmul(in.get(1))),
            entry("matmulTransposed", (in, a) -> in.get(0).matmul(in.get(1).transpose(0, 1))),
            entry("linear", (in, a) -> Functional.linear(in.get(0), in.get(1), in.get(2))),
            entry("linearInOut", (in, a) -> Functional.linearInOut(in.get(0), in.get(1), in.get(2))),
            // transformer ops
            entry("embedding", (in, a) -> Functional.embedding(in.get(0), in.get(1))),
            entry("layerNorm", (in, a) -> Functional.layerNorm(in.get(0), in.get(1), in.get(2), a.get("eps").asDouble())),
            entry("layerNormPlain", (in, a) -> Functional.layerNorm(in.get(0), null, null, a.get("eps").asDouble())),
            entry("rmsNorm", (in, a) -> Functional.rmsNorm(in.get(0), in.get(1), a.get("eps").asDouble())),
            entry("softmax", (in, a) -> Functional.softmax(in.get(0))),
            entry("logSoftmax", (in, a) -> Functional.logSoftmax(in.get(0))),
            entry("logprobs", (in, a) -> Functional.logprobs(in.get(0), in.get(1), a.get("ignoreIndex").asInt())),
            entry("crossEntropy", (in, a) -> Functional.crossEntropy(in.get(0), in.get(1), a.get("ignoreIndex").asInt())),
            entry("attention", OpCases::attention),
            entry("rope", (in, a) -> {
                Tensor x = in.get(0);
                JsonNode f = a.get("invFreq");
                double[] inv = new double[f.size()];
                for (int i = 0; i < inv.length; i++) inv[i] = f.get(i).asDouble();
                Tensor invFreq = Tensor.of(inv, inv.length);
                if (x.dtype() == DType.F32) invFreq = invFreq.to(DType.F32);
                return Functional.rope(x, in.get(1), invFreq, a.get("rotaryDim").asInt());
            }));

    /** The fusedQkv case runs attention on column slices of one [B, T, 3 H D] tensor, as GPT-2 does. */
    private static Tensor attention(List<Tensor> in, JsonNode a) {
        Tensor q = in.get(0), k = in.get(1), v = in.get(2), mask = in.get(3);
        double scale = a.get("scale").asDouble();
        boolean causal = a.get("causal").asBoolean();
        int window = a.get("window").asInt();
        if (q.size(1) == k.size(1) && q.size(2) == k.size(2) && q.size(0) == 2 && q.size(3) == 3) { // fusedQkv
            int b = q.size(0), t = q.size(1), h = q.size(2), d = q.size(3), e = h * d;
            Tensor qkv = Functional.concat(2, q.reshape(b, t, e), k.reshape(b, t, e), v.reshape(b, t, e));
            q = qkv.slice(2, 0, e).reshape(b, t, h, d);
            k = qkv.slice(2, e, 2 * e).reshape(b, t, h, d);
            v = qkv.slice(2, 2 * e, 3 * e).reshape(b, t, h, d);
            if (q.isContiguous()) throw new AssertionError("fusedQkv must exercise strided rows");
        }
        return Functional.attention(q, k, v, mask, scale, causal, window);
    }

    static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).asInt();
        return out;
    }
}
