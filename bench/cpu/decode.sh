#!/usr/bin/env bash
# Batched greedy generation, rlhf4j (JMH DecodeBenchmark) against transformers' generate
# (bench/peers/torch_decode.py), same machine, same run, same config, prompt tokens, batch and threads:
#   PYTHON=.venv-ref/bin/python bench/cpu/decode.sh [model=gpt2|tiny] [batch=1] [prompt=64] [new=64] [threads=2]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
model=${1:-gpt2}; batch=${2:-1}; prompt=${3:-64}; new=${4:-64}; threads=${5:-2}
py=${PYTHON:-python3}
out=$(mktemp -d)
"$root/bench/run.sh" DecodeBenchmark -p model="$model" -p batch="$batch" -p prompt="$prompt" -p newTokens="$new" \
  -p threads="$threads" -rf json -rff "$out/jmh.json" > "$out/jmh.log"
"$py" "$root/bench/peers/torch_decode.py" --model "$model" --batch "$batch" --prompt "$prompt" --new-tokens "$new" \
  --threads "$threads" > "$out/peer.json" 2> "$out/peer.log"
"$py" - "$out/jmh.json" "$out/peer.json" "$batch" "$new" <<'PY'
import json, sys
jmh = json.load(open(sys.argv[1]))[0]["primaryMetric"]
peer = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
batch, new = int(sys.argv[3]), int(sys.argv[4])
ours = batch * new / jmh["score"] * 1e3
print(f"rlhf4j {ours:.1f} tokens/s ({jmh['score']:.0f} +- {jmh['scoreError']:.0f} ms/generate), "
      f"transformers {peer['tokens_per_s']:.1f} tokens/s ({peer['ms_per_generate']:.0f} ms, torch {peer['torch']}); "
      f"ratio rlhf4j/transformers = {ours / peer['tokens_per_s']:.2f}")
PY
echo "logs in $out"
