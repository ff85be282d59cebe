#!/usr/bin/env python3
"""The PyTorch peer of AttentionBenchmark: torch.nn.functional.scaled_dot_product_attention, is_causal=True, scale
1/sqrt(d), on q, k, v laid out as rlhf4j's ([B, T, H, d], passed to SDPA as the [B, H, T, d] view transpose(1, 2), as
a transformer block does after its qkv projection), normal(0, 1) data. Passes: "fwd" (forward under no_grad) and
"fwdbwd" (forward, then torch.autograd.grad of out against dout for q, k, v: fresh gradients, no accumulation).

Timing as AttentionBenchmark's: each timed run enqueues --launches ops and waits once; CUDA events around the run on
a GPU, a host clock on the CPU; after --warmup untimed runs, the median over --runs runs, in us per op. Prints one JSON
line per shape and pass.

    python3 bench/peers/torch_attention.py --device cuda --dtype bfloat16 --shapes 8x12x1024x64,4x16x2048x128
    python3 bench/peers/torch_attention.py --device cpu --dtype float32 --shapes 1x4x256x64 --threads 2
"""
import argparse, json, math, statistics, time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--device", default="cuda")
p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
p.add_argument("--shapes", default="8x12x1024x64,4x16x2048x128", help="comma-separated BxHxTxD")
p.add_argument("--passes", default="fwd,fwdbwd")
p.add_argument("--backend", default="auto", choices=["auto", "flash", "cudnn", "efficient", "math"],
               help="SDPA backend; auto lets torch pick, as a user's model gets")
p.add_argument("--launches", type=int, default=20, help="ops per timed run (AttentionBenchmark.LAUNCHES)")
p.add_argument("--warmup", type=int, default=5)
p.add_argument("--runs", type=int, default=30)
p.add_argument("--threads", type=int, default=2, help="CPU threads (CPU only)")
a = p.parse_args()
cuda = a.device.startswith("cuda")
if cuda and not torch.cuda.is_available():
    raise SystemExit("torch_attention.py: --device %s but torch sees no CUDA GPU" % a.device)
if not cuda:
    torch.set_num_threads(a.threads)
dtype = getattr(torch, a.dtype)


def backend_context():
    if a.backend == "auto":
        import contextlib
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel({"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                        "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[a.backend])


def timed(op):
    """Median us per op over a.runs runs of a.launches ops, after a.warmup runs."""
    times = []
    for r in range(a.warmup + a.runs):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(a.launches):
                op()
            end.record()
            end.synchronize()
            ms = start.elapsed_time(end)
        else:
            t0 = time.perf_counter()
            for _ in range(a.launches):
                op()
            ms = (time.perf_counter() - t0) * 1e3
        if r >= a.warmup:
            times.append(ms * 1e3 / a.launches)
    return times


def picked_backend(q, k, v):
    """Which kernel SDPA runs, read from the profiler's kernel names (auto mode); None where it cannot tell."""
    try:
        from torch.profiler import ProfilerActivity, profile
        # the CPU side names the aten op (_scaled_dot_product_flash_attention, ..._cudnn_attention, ...)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=acts) as prof, backend_context():
            F.scaled_dot_product_attention(q, k, v, is_causal=True)
            if cuda:
                torch.cuda.synchronize()
        names = " ".join(e.key for e in prof.key_averages()).lower()
        for key, name in (("cudnn", "cudnn"), ("flash", "flash"), ("efficient", "efficient"), ("fmha", "efficient")):
            if key in names:
                return name
        return "math" if "bmm" in names or "matmul" in names else None
    except Exception:  # the profiler is informative only
        return None


gen = torch.Generator(device=a.device).manual_seed(0)
for shape in a.shapes.split(","):
    B, H, T, D = (int(x) for x in shape.split("x"))
    scale = 1.0 / math.sqrt(D)
    # [B, T, H, D] storage, as rlhf4j's; SDPA sees the [B, H, T, D] view.
    qs, ks, vs, douts = (torch.randn(B, T, H, D, device=a.device, dtype=dtype, generator=gen) for _ in range(4))
    q, k, v, dout = (x.transpose(1, 2) for x in (qs, ks, vs, douts))
    backend = a.backend if a.backend != "auto" else picked_backend(q, k, v)
    ql, kl, vl = (x.detach().requires_grad_(True) for x in (qs, ks, vs))

    def fwd():
        with torch.no_grad():
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)

    def fwdbwd():
        out = F.scaled_dot_product_attention(ql.transpose(1, 2), kl.transpose(1, 2), vl.transpose(1, 2),
                                             is_causal=True, scale=scale)
        return torch.autograd.grad(out, (ql, kl, vl), dout)

    for name in a.passes.split(","):
        op = {"fwd": fwd, "fwdbwd": fwdbwd}[name]
        with backend_context():
            res = op()
            res = res if isinstance(res, tuple) else (res,)
            if not all(bool(torch.isfinite(r).all()) for r in res):
                raise SystemExit(f"torch_attention.py: {shape} {name}: non-finite output")
            times = timed(op)
        print(json.dumps({"peer": "torch.sdpa", "torch": torch.__version__, "device": a.device,
                          "gpu": torch.cuda.get_device_name() if cuda else None, "dtype": a.dtype,
                          "backend": backend, "shape": shape, "pass": name, "launches": a.launches,
                          "us_per_op": statistics.median(times), "min": min(times), "max": max(times),
                          "runs": len(times)}), flush=True)
