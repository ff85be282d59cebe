#!/usr/bin/env bash
# Decode speed on one GPU (issue 5's benchmark): OPT-1.3B's shape (random weights), 256-token prompts, 256 new
# tokens, batch 1, 16 and 64: rlhf4j's CUDA backend (JMH DecodeBenchmark, device cuda:0) against transformers'
# generate on the same GPU (bench/peers/torch_decode.py --device cuda), and each as a fraction of the memory floor:
# per step, the weights (1.3B x bytes per weight) plus the KV cache read (2 x 24 layers x 2048 x bytes x cached tokens x
# batch) over 3.0 TB/s.
#   PYTHON=/path/to/venv/bin/python bench/gpu/decode.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py=${PYTHON:-python3}
if ! "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "bench/gpu/decode.sh: no CUDA GPU visible to PyTorch; nothing measured" >&2; exit 2
fi
if ! ls "$root"/target/classes/native/*/librlhf4j_cuda.so >/dev/null 2>&1; then
  echo "bench/gpu/decode.sh: this build has no CUDA backend (librlhf4j_cuda.so, the CUDA issue); measuring the peer only" >&2
  ours=0
else
  ours=1
fi
for batch in 1 16 64; do
  out=$(mktemp -d)
  "$py" "$root/bench/peers/torch_decode.py" --model opt-1.3b --device cuda --dtype bfloat16 --batch "$batch" \
    --prompt 256 --new-tokens 256 --warmup 1 --runs 3 > "$out/peer.json"
  if [ "$ours" = 1 ]; then
    "$root/bench/run.sh" DecodeBenchmark -p model=opt-1.3b -p device=cuda:0 -p batch="$batch" -p prompt=256 \
      -p newTokens=256 -wi 1 -i 3 -rf json -rff "$out/jmh.json" > "$out/jmh.log"
  fi
  "$py" - "$out" "$batch" "$ours" <<'PY'
import json, os, sys
out, batch, ours = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
peer = json.loads(open(os.path.join(out, "peer.json")).read().strip().splitlines()[-1])
params, layers, hidden, bytes_w = 1.316e9, 24, 2048, 2
# average cached length over the 256 steps: 256 + 128 tokens
floor_ms = (params * bytes_w + 2 * layers * hidden * bytes_w * (256 + 128) * batch) / 3.0e12 * 1e3
floor_tps = batch / floor_ms * 1e3
line = f"batch {batch}: transformers {peer['tokens_per_s']:.0f} tok/s ({peer['tokens_per_s'] / floor_tps:.0%} of floor)"
if ours:
    jmh = json.load(open(os.path.join(out, "jmh.json")))[0]["primaryMetric"]
    tps = batch * 256 / jmh["score"] * 1e3
    line += f", rlhf4j {tps:.0f} tok/s ({tps / floor_tps:.0%} of floor), ratio {tps / peer['tokens_per_s']:.2f}"
print(line + f"; floor {floor_tps:.0f} tok/s")
PY
done
