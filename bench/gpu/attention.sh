#!/usr/bin/env bash
# Attention speed on one GPU (issue 9's benchmark): causal multi-head attention, bf16, forward and forward+backward,
# B=8 H=12 T=1024 d=64 and B=4 H=16 T=2048 d=128: rlhf4j's CUDA backend (JMH AttentionBenchmark, device cuda:0, the
# ABI entry points on preallocated buffers) against torch's scaled_dot_product_attention with is_causal=True on the
# same GPU, the same [B, T, H, d] layout and the same launches-per-sync (bench/peers/torch_attention.py; torch picks its
# backend, named in the output). Per shape and pass it prints both times, the ratio torch time / rlhf4j time (our
# speed as a fraction of torch's; the goal is >= 0.8) and each time's distance from the H100 floor that
# kernels/attention.cu's header derives (798 TFLOP/s bf16, 3.0 TB/s): fwd 16.9 / 86.1 us, fwd+bwd 57 / 301 us. On
# another GPU the floor column is still the H100's.
# Nothing is appended to RESULTS.md or results.jsonl: a person records the figures. Raw JMH and peer output go to
# $OUT/attention/ when $OUT is set (the device tool's folder), else stay in a temporary folder named at the end.
#   PYTHON=/path/to/venv/bin/python bench/gpu/attention.sh
# Exit status: 0 measured, 1 a run failed, 2 no GPU visible (nothing measured).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py=${PYTHON:-python3}
if ! "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "bench/gpu/attention.sh: no CUDA GPU visible to PyTorch ($py); nothing measured" >&2; exit 2
fi
if ! ls "$root"/target/classes/native/*/librlhf4j_cuda.so >/dev/null 2>&1; then
  echo "bench/gpu/attention.sh: this build has no CUDA backend (librlhf4j_cuda.so); measuring the peer only" >&2
  ours=0
else
  ours=1
fi
shapes=8x12x1024x64,4x16x2048x128
if [ -n "${OUT:-}" ]; then out="$OUT/attention"; mkdir -p "$out"; else out=$(mktemp -d); fi
status=0
"$py" "$root/bench/peers/torch_attention.py" --device cuda --dtype bfloat16 --shapes "$shapes" \
  --passes fwd,fwdbwd > "$out/peer.jsonl" 2> "$out/peer.err" || {
  status=1; echo "bench/gpu/attention.sh: the torch peer failed:" >&2; tail -20 "$out/peer.err" >&2; }
if [ "$ours" = 1 ]; then
  # JMH goes on after a failing combination (its result is then missing from jmh.json, and the table says so).
  "$root/bench/run.sh" AttentionBenchmark -p device=cuda:0 -p dtype=BF16 -p shape="$shapes" -p pass=fwd,fwdbwd \
    -f 1 -wi 3 -i 5 -r 1 -rf json -rff "$out/jmh.json" > "$out/jmh.log" 2>&1 || status=1
  grep -E '^(Benchmark|AttentionBenchmark)' "$out/jmh.log" || true
  if grep -q -E 'ERROR|Exception' "$out/jmh.log"; then
    status=1
    echo "bench/gpu/attention.sh: JMH reported errors:" >&2
    grep -E -A8 'ERROR|Exception' "$out/jmh.log" | head -40 >&2
  fi
fi
"$py" - "$out" "$ours" <<'PY' || status=1
import json, os, sys
out, ours = sys.argv[1], sys.argv[2] == "1"
floors_us = {("8x12x1024x64", "fwd"): 16.9, ("8x12x1024x64", "fwdbwd"): 57.0,
             ("4x16x2048x128", "fwd"): 86.1, ("4x16x2048x128", "fwdbwd"): 301.0}
peer = {}
if os.path.exists(os.path.join(out, "peer.jsonl")):
    for line in open(os.path.join(out, "peer.jsonl")):
        if line.startswith("{"):
            r = json.loads(line)
            peer[(r["shape"], r["pass"])] = r
mine = {}
jmh_path = os.path.join(out, "jmh.json")
if ours and os.path.exists(jmh_path) and os.path.getsize(jmh_path) > 0:
    for r in json.load(open(jmh_path)):
        mine[(r["params"]["shape"], r["params"]["pass"])] = r["primaryMetric"]["score"]  # us/op
gpu = next((r["gpu"] for r in peer.values() if r.get("gpu")), "?")
print(f"attention, causal, bf16, on {gpu}; ratio = torch time / rlhf4j time (goal >= 0.8); "
      "% of floor = H100 floor / time (100% = at the floor)")
failed = False
for (shape, pas), floor in floors_us.items():
    B, H, T, D = shape.split("x")
    line = f"B={B} H={H} T={T} d={D} {'fwd+bwd' if pas == 'fwdbwd' else 'fwd    '}:"
    p, m = peer.get((shape, pas)), mine.get((shape, pas))
    line += (f" rlhf4j {m / 1e3:.4f} ms ({floor / m:.0%} of floor)" if m else
             " rlhf4j -" + (" (failed: see jmh.log)" if ours else " (no CUDA backend in this build)"))
    line += (f", torch[{p['backend']}] {p['us_per_op'] / 1e3:.4f} ms ({floor / p['us_per_op']:.0%} of floor)" if p
             else ", torch - (failed: see peer.err)")
    if m and p:
        line += f", ratio {p['us_per_op'] / m:.2f}"
    failed |= p is None or (ours and m is None)
    print(line + f"; floor {floor / 1e3:.4f} ms")
sys.exit(1 if failed else 0)
PY
echo "bench/gpu/attention.sh: raw output in $out" >&2
exit $status
