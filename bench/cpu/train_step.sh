#!/usr/bin/env bash
# One GPT-2 training step, rlhf4j (JMH TrainStepBenchmark) against PyTorch (bench/peers/torch_train_step.py), same
# machine, same run, same config, batch, tokens and threads. Needs a Python with torch and transformers:
#   PYTHON=.venv-ref/bin/python bench/cpu/train_step.sh [model=tiny|gpt2] [batch] [seq] [threads]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
model=${1:-tiny}; batch=${2:-4}; seq=${3:-128}; threads=${4:-2}
py=${PYTHON:-python3}
out=$(mktemp -d)
"$root/bench/run.sh" TrainStepBenchmark -p model="$model" -p batch="$batch" -p seq="$seq" -p threads="$threads" \
  -rf json -rff "$out/jmh.json" > "$out/jmh.log"
"$py" "$root/bench/peers/torch_train_step.py" --model "$model" --batch "$batch" --seq "$seq" --threads "$threads" \
  > "$out/peer.json" 2> "$out/peer.log"
"$py" - "$out/jmh.json" "$out/peer.json" <<'PY'
import json, sys
jmh = json.load(open(sys.argv[1]))[0]["primaryMetric"]
peer = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
ours = jmh["score"]
print(f"rlhf4j {ours:.1f} +- {jmh['scoreError']:.1f} ms/step, torch {peer['torch']} {peer['ms_per_step']:.1f} ms/step "
      f"(min {peer['min']:.1f}); speed ratio rlhf4j/torch = {peer['ms_per_step'] / ours:.2f}")
PY
echo "logs in $out"
