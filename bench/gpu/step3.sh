#!/usr/bin/env bash
# DeepSpeed-Chat's step-3 iteration on one GPU (issue 11's R1-R4 of ../shared/notes/performance.md): rlhf4j
# (`rlhf4j bench step3 --run Rn --device cuda`) against the PyTorch + transformers peer (bench/peers/step3_torch.py
# --device cuda) with the same shapes, batch, lengths and seed, back to back on the same GPU.
#
# READ THE RATIOS WITH THE DTYPES IN MIND: rlhf4j's model layer computes in F32 on the GPU today (BF16 compute weights
# are not wired), and so does the peer here (fp32, matmul precision "highest"); performance.md's floors assume bf16.
# NOTHING HAS RUN ON A GPU YET: the first run of this script is also the first run of the stages' code on a real
# device; its logs are what to read first.
#
#   PYTHON=/path/to/venv/bin/python bench/gpu/step3.sh [R1 R3 ...]     (default: R1 R3; each run under RUN_TIMEOUT s)
# Environment: ITERS (timed iterations, default 2), WARMUP (default 1), RUN_TIMEOUT (seconds per side, default 240).
# Raw output goes to $OUT/step3/ when $OUT is set, else to a temporary folder named at the end. Nothing is appended to
# RESULTS.md or results.jsonl: a person records the figures.
# Exit status: 0 measured, 1 a run failed, 2 no GPU visible (nothing measured).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py=${PYTHON:-python3}
iters=${ITERS:-2}; warmup=${WARMUP:-1}; limit=${RUN_TIMEOUT:-240}
runs=("$@"); [ ${#runs[@]} -gt 0 ] || runs=(R1 R3)
if ! "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "bench/gpu/step3.sh: no CUDA GPU visible to PyTorch ($py); nothing measured" >&2; exit 2
fi
java="$root/jdk/bin/java"; [ -x "$java" ] || java="${JAVA_HOME:+$JAVA_HOME/bin/java}"
[ -n "$java" ] && [ -x "$java" ] || { echo "bench/gpu/step3.sh: no packed JDK ($root/jdk) and no JAVA_HOME" >&2; exit 1; }
cp="$root/target/classes:$(printf '%s:' "$root"/target/lib/*.jar)"
export RLHF4J_NATIVE_DIR="$root/target/classes/native/linux-x86_64"
if [ -n "${OUT:-}" ]; then out="$OUT/step3"; mkdir -p "$out"; else out=$(mktemp -d); fi

# the shapes of each run, as performance.md (and Step3Run) define them
shape() {
  case "$1" in
    R1) echo "opt-125m opt-125m 256" ;; R2) echo "opt-350m opt-350m 256" ;; R3) echo "opt-1.3b opt-350m 64" ;;
    R4) echo "opt-1.3b opt-350m 256" ;; R5) echo "opt-2.7b opt-350m 64" ;;
    *) echo "bench/gpu/step3.sh: unknown run $1 (R1-R5)" >&2; return 1 ;;
  esac
}

status=0
for r in "${runs[@]}"; do
  read -r actor critic batch < <(shape "$r") || { status=1; continue; }
  echo "== $r: $actor + $critic, batch $batch, 256 + 256"
  timeout "$limit" "$java" --enable-native-access=ALL-UNNAMED -cp "$cp" io.github.rlhf4j.cli.Main bench step3 \
    --run "$r" --device cuda --iters "$iters" --json "$out/ours-$r.json" > "$out/ours-$r.log" 2>&1 || {
    status=1; echo "bench/gpu/step3.sh: rlhf4j $r failed or ran past ${limit}s:" >&2; tail -30 "$out/ours-$r.log" >&2; }
  cat "$out/ours-$r.log" 2>/dev/null | tail -25 || true
  timeout "$limit" "$py" "$root/bench/peers/step3_torch.py" --actor "$actor" --critic "$critic" --batch "$batch" \
    --prompt-len 256 --answer-len 256 --iters "$iters" --warmup "$warmup" --device cuda --json "$out/peer-$r.json" \
    > "$out/peer-$r.log" 2>&1 || {
    status=1; echo "bench/gpu/step3.sh: the torch peer $r failed or ran past ${limit}s:" >&2; tail -30 "$out/peer-$r.log" >&2; }
  "$py" - "$out" "$r" <<'PY' || status=1
import json, os, sys
out, r = sys.argv[1], sys.argv[2]
def load(p):
    p = os.path.join(out, p)
    return json.load(open(p)) if os.path.exists(p) else None
ours, peer = load(f"ours-{r}.json"), load(f"peer-{r}.json")
def it(j):
    if j is None: return None
    for k in ("iter_s", "iteration_s", "seconds_per_iteration"):
        if k in j: return j[k]
    return None
a, b = it(ours), it(peer)
print(f"{r}: rlhf4j {a} s/iter, torch {b} s/iter" + (f", ratio torch/rlhf4j {b / a:.2f}" if a and b else ""))
PY
done
echo "raw output: $out"
exit $status
