#!/usr/bin/env python3
"""Makes src/test/resources/fixtures/ops.json: PyTorch's forward values and gradients for every differentiable op of
rlhf4j, on fixed small inputs, in float64.

Each case names an op of OpCases.java (the same table drives the Java finite-difference checks), its attributes, its
inputs, the output, the upstream weights w, and the gradient of L = sum(w * output) for each floating input.
Regenerate with:  python3 src/test/python/make_op_fixtures.py   (torch 2.x CPU; see README, "Test fixtures")
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(__file__), "..", "resources", "fixtures", "ops.json")
gen = torch.Generator().manual_seed(1234)


def randn(*shape, scale=1.0):
    return torch.randn(shape, generator=gen) * scale


def positive(*shape):
    return torch.rand(shape, generator=gen) * 2 + 0.1


def ints(low, high, *shape):
    return torch.randint(low, high, shape, generator=gen, dtype=torch.int32)


def away_from(x, points, gap=1e-2):
    """Moves values off kinks (relu at 0, clamp bounds) so finite differences are valid there too."""
    for p in points:
        near = (x - p).abs() < gap
        x = torch.where(near, x + 3 * gap * torch.sign(x - p + 1e-12), x)
    return x


cases = []


def case(name, op, inputs, fn, attrs=None, constant=()):
    """inputs: list of tensors; float ones require grad unless their index is in `constant` (masks)."""
    leaves = []
    for i, t in enumerate(inputs):
        if t is None:
            leaves.append(None)
        elif t.dtype == torch.float64 and i not in constant:
            leaves.append(t.clone().requires_grad_(True))
        else:
            leaves.append(t.clone())
    out = fn(*leaves)
    w = torch.randn(out.shape, generator=gen)
    (out * w).sum().backward()

    def enc(t):
        if t is None:
            return None
        d = {"shape": list(t.shape), "dtype": "f64" if t.dtype == torch.float64 else "i32",
             "data": [float(v) if t.dtype == torch.float64 else int(v) for v in t.detach().flatten().tolist()]}
        if t.dtype == torch.float64:
            d["requiresGrad"] = bool(t.requires_grad)
        return d

    cases.append({
        "name": name, "op": op, "attrs": attrs or {},
        "inputs": [enc(t) for t in leaves],
        "output": enc(out),
        "weights": enc(w),
        "grads": [enc(t.grad) if (t is not None and t.dtype == torch.float64 and t.grad is not None) else None
                  for t in leaves],
    })


# ---- unary -------------------------------------------------------------------------------------------------------
x = randn(3, 5)
case("exp", "exp", [x], torch.exp)
case("log", "log", [positive(3, 5)], torch.log)
case("sqrt", "sqrt", [positive(3, 5)], torch.sqrt)
case("square", "square", [x], torch.square)
case("abs", "abs", [away_from(randn(3, 5), [0.0])], torch.abs)
case("neg", "neg", [x], torch.neg)
case("mulScalar", "mulScalar", [x], lambda a: a * 2.5, {"c": 2.5})
case("addScalar", "addScalar", [x], lambda a: a + (-0.75), {"c": -0.75})
case("sigmoid", "sigmoid", [randn(3, 5, scale=3)], torch.sigmoid)
case("tanh", "tanh", [randn(3, 5, scale=2)], torch.tanh)
case("relu", "relu", [away_from(randn(4, 6), [0.0])], torch.relu)
case("gelu", "gelu", [randn(4, 6, scale=3)], F.gelu)
case("geluTanh", "geluTanh", [randn(4, 6, scale=3)], lambda a: F.gelu(a, approximate="tanh"))
case("silu", "silu", [randn(4, 6, scale=3)], F.silu)
case("logSigmoid", "logSigmoid", [randn(4, 6, scale=10)], F.logsigmoid)
case("clamp", "clamp", [away_from(randn(4, 6, scale=2), [-0.5, 0.8])], lambda a: a.clamp(-0.5, 0.8),
     {"min": -0.5, "max": 0.8})

# ---- binary with broadcasting --------------------------------------------------------------------------------------
for op, fn in [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("div", torch.div),
               ("maximum", torch.maximum), ("minimum", torch.minimum)]:
    for tag, sa, sb in [("same", (3, 4), (3, 4)), ("row", (2, 3, 4), (4,)), ("outer", (2, 1, 4), (1, 3, 1)),
                        ("scalar", (3, 4), ())]:
        a, b = randn(*sa), randn(*sb)
        if op == "div":
            b = b.sign() * (b.abs() + 0.5)
        case(f"{op}/{tag}", op, [a, b], fn)

# ---- reductions ----------------------------------------------------------------------------------------------------
x = randn(2, 3, 4)
case("sum", "sum", [x], torch.sum)
case("mean", "mean", [x], torch.mean)
case("sumDim/keep", "sumDim", [x], lambda a: a.sum(1, keepdim=True), {"dim": 1, "keepDim": True})
case("sumDim/drop", "sumDim", [x], lambda a: a.sum(-1), {"dim": -1, "keepDim": False})
case("meanDim", "meanDim", [x], lambda a: a.mean(0), {"dim": 0, "keepDim": False})
mask = (torch.rand(3, 5, generator=gen) > 0.4).double()
mask[1] = 0  # a row with an empty mask
case("maskedSum", "maskedSum", [randn(3, 5), mask], lambda a, m: (a * m).sum(), constant=(1,))
case("maskedMean", "maskedMean", [randn(3, 5), mask], lambda a, m: (a * m).sum() / m.sum(), constant=(1,))
case("maskedSumLastDim", "maskedSumLastDim", [randn(3, 5), mask], lambda a, m: (a * m).sum(-1), constant=(1,))
case("maskedMeanLastDim", "maskedMeanLastDim", [randn(3, 5), mask],
     lambda a, m: torch.where(m.sum(-1) > 0, (a * m).sum(-1) / m.sum(-1).clamp(min=1e-30), torch.zeros(3)), constant=(1,))

# ---- views ---------------------------------------------------------------------------------------------------------
x = randn(2, 3, 4)
case("reshape", "reshape", [x], lambda a: a.reshape(4, 6) * 1.0, {"shape": [4, 6]})
case("transpose", "transpose", [x], lambda a: a.transpose(0, 2).contiguous(), {"dim0": 0, "dim1": 2})
case("permute", "permute", [x], lambda a: a.permute(2, 0, 1).contiguous(), {"dims": [2, 0, 1]})
case("slice", "slice", [x], lambda a: a[:, 1:3, :].contiguous(), {"dim": 1, "start": 1, "end": 3})
case("select", "select", [x], lambda a: a[:, 2, :].contiguous(), {"dim": 1, "index": 2})
case("unsqueeze", "unsqueeze", [x], lambda a: a.unsqueeze(1) * 1.0, {"dim": 1})
case("expand", "expand", [randn(3, 1)], lambda a: a.expand(3, 4).contiguous(), {"shape": [3, 4]})
case("concat", "concat", [randn(2, 3), randn(2, 1), randn(2, 2)], lambda a, b, c: torch.cat([a, b, c], 1), {"dim": 1})
case("transposeReshape", "transposeReshape", [x], lambda a: a.transpose(1, 2).reshape(2, 12))

# ---- matmul and linear ---------------------------------------------------------------------------------------------
case("matmul/2d", "matmul", [randn(4, 5), randn(5, 3)], torch.matmul)
case("matmul/batched", "matmul", [randn(2, 4, 5), randn(2, 5, 3)], torch.matmul)
case("matmul/weight", "matmul", [randn(2, 4, 5), randn(5, 3)], torch.matmul)
case("matmul/broadcast", "matmul", [randn(4, 5), randn(3, 5, 2)], torch.matmul)
case("matmul/transposedView", "matmulTransposed", [randn(4, 5), randn(3, 5)], lambda a, b: a @ b.t())
case("linear/bias", "linear", [randn(2, 3, 5), randn(4, 5), randn(4)], F.linear)
case("linear/noBias", "linear", [randn(3, 5), randn(4, 5), None], lambda a, w, b: F.linear(a, w))
case("linearInOut", "linearInOut", [randn(2, 3, 5), randn(5, 4), randn(4)], lambda a, w, b: a @ w + b)

# ---- embedding, norms, softmax, logprobs ---------------------------------------------------------------------------
ids = torch.tensor([[1, 4, 1], [6, 0, 4]], dtype=torch.int32)
case("embedding", "embedding", [ids, randn(7, 4)], lambda i, w: F.embedding(i.long(), w))
case("layerNorm/affine", "layerNorm", [randn(3, 2, 6, scale=2) + 1, 1 + randn(6, scale=0.3), randn(6, scale=0.3)],
     lambda a, w, b: F.layer_norm(a, (6,), w, b, 1e-5), {"eps": 1e-5})
case("layerNorm/plain", "layerNormPlain", [randn(4, 7)], lambda a: F.layer_norm(a, (7,), eps=1e-6), {"eps": 1e-6})
case("rmsNorm", "rmsNorm", [randn(3, 2, 6), 1 + randn(6, scale=0.3)],
     lambda a, w: a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + 1e-6) * w, {"eps": 1e-6})
case("softmax", "softmax", [randn(3, 7, scale=2)], lambda a: torch.softmax(a, -1))
case("logSoftmax", "logSoftmax", [randn(3, 7, scale=2)], lambda a: torch.log_softmax(a, -1))
targets = torch.tensor([[3, 0, -100], [9, 2, 5]], dtype=torch.int32)


def logprobs_ref(logits, t):
    lp = torch.log_softmax(logits, -1)
    safe = t.long().clamp(min=0)
    g = lp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(t == -100, torch.zeros_like(g), g)


case("logprobs", "logprobs", [randn(2, 3, 10, scale=2), targets], logprobs_ref, {"ignoreIndex": -100})
case("crossEntropy", "crossEntropy", [randn(2, 3, 10, scale=2), targets],
     lambda l, t: F.cross_entropy(l.reshape(-1, 10), t.long().reshape(-1), ignore_index=-100), {"ignoreIndex": -100})


# ---- attention -----------------------------------------------------------------------------------------------------
def attention_ref(q, k, v, key_mask, scale, causal, window):
    B, Tq, Hq, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    rep = Hq // Hkv
    kk = k.repeat_interleave(rep, dim=2)
    vv = v.repeat_interleave(rep, dim=2)
    s = torch.einsum("bthd,bshd->bhts", q, kk) * scale
    tpos = torch.arange(Tq).unsqueeze(1) + (Tk - Tq)
    j = torch.arange(Tk).unsqueeze(0)
    allowed = torch.ones(Tq, Tk, dtype=torch.bool)
    if causal:
        allowed &= j <= tpos
    if window > 0:
        allowed &= j > tpos - window
    allowed = allowed.view(1, 1, Tq, Tk).expand(B, Hq, Tq, Tk)
    if key_mask is not None:
        allowed = allowed & (key_mask != 0).view(B, 1, 1, Tk)
    any_key = allowed.any(-1, keepdim=True)
    s = torch.where(allowed, s, torch.tensor(float("-inf")))
    s = torch.where(any_key, s, torch.zeros_like(s))  # keeps fully masked rows finite
    p = torch.where(any_key, torch.softmax(s, -1), torch.zeros_like(s))
    return torch.einsum("bhts,bshd->bthd", p, vv)


def att_case(name, B, Tq, Tk, Hq, Hkv, D, causal, window, mask):
    scale = 1 / math.sqrt(D)
    q, k, v = randn(B, Tq, Hq, D), randn(B, Tk, Hkv, D), randn(B, Tk, Hkv, D)
    case(name, "attention", [q, k, v, mask],
         lambda q, k, v, m: attention_ref(q, k, v, m, scale, causal, window),
         {"scale": scale, "causal": causal, "window": window})


att_case("attention/causal", 2, 5, 5, 2, 2, 4, True, 0, None)
att_case("attention/full", 1, 4, 6, 2, 2, 3, False, 0, None)
att_case("attention/gqa", 1, 6, 6, 4, 2, 4, True, 0, None)
att_case("attention/window", 1, 7, 7, 2, 1, 4, True, 3, None)
att_case("attention/decode", 2, 1, 6, 2, 2, 4, True, 0, None)
att_case("attention/chunk", 1, 3, 7, 2, 2, 4, True, 0, None)
att_case("attention/leftPadding", 2, 5, 5, 2, 2, 4, True, 0,
         torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.int32))
att_case("attention/fusedQkv", 2, 4, 4, 2, 2, 3, True, 0, None)  # Java views q, k, v as slices of one qkv tensor


# ---- rotary embedding ----------------------------------------------------------------------------------------------
def rope_ref(x, pos, inv_freq, rotary):
    half = rotary // 2
    ang = pos.double().unsqueeze(-1) * inv_freq  # [B, T, half]
    cos = torch.cat([ang.cos(), ang.cos()], -1).unsqueeze(2)
    sin = torch.cat([ang.sin(), ang.sin()], -1).unsqueeze(2)
    xr, xp = x[..., :rotary], x[..., rotary:]
    rot = torch.cat([-xr[..., half:], xr[..., :half]], -1)
    return torch.cat([xr * cos + rot * sin, xp], -1)


for name, D, rotary in [("rope/full", 8, 8), ("rope/partial", 8, 4)]:
    inv = 1.0 / (10000.0 ** (torch.arange(0, rotary, 2).double() / rotary))
    pos = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 2]], dtype=torch.int32)
    case(name, "rope", [randn(2, 4, 3, D), pos], lambda x, p: rope_ref(x, p, inv, rotary),
         {"rotaryDim": rotary, "invFreq": inv.tolist()})

with open(OUT, "w") as f:
    json.dump({"generator": "src/test/python/make_op_fixtures.py", "torch": torch.__version__,
               "python": sys.version.split()[0], "cases": cases}, f, separators=(",", ":"))
print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes) with torch {torch.__version__}")
