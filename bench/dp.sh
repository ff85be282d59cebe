#!/usr/bin/env bash
# Data-parallel training under ZeRO, rlhf4j (`mpirun -np N rlhf4j bench data-parallel`) against PyTorch's own
# counterpart of each stage (bench/peers/dp_torch.py: DDP; DDP + ZeroRedundancyOptimizer; FSDP2 without and with
# resharding after the forward), back to back on the same machine with the same model, ranks, batch, length and
# threads. Prints a table of milliseconds per step and the ratio torch / rlhf4j (above 1: rlhf4j is faster).
#
#   PYTHON=.venv-ref/bin/python bench/dp.sh                        opt-125m, 2 ranks x 2 x 128 tokens, stages 0-3
#   PYTHON=... bench/dp.sh --model tiny --stages "0 3" --repeat 2 --record   ... and append to results.jsonl, RESULTS.md
#
# Options: --model --ranks --batch --seq-len --steps --warmup --threads (per rank) --seed --stages LIST,
# --repeat N (N pairs per stage, alternating ours and the peer; each side's fastest median counts), --record.
# Environment: PYTHON (with torch and transformers), RLHF4J_JAR (a built rlhf4j jar; default: bin/rlhf4j),
# MPIRUN_OPTS (e.g. --oversubscribe --allow-run-as-root), DEVICE_LABEL (the machine, for the records).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py=${PYTHON:-python3}
model=opt-125m; ranks=2; batch=2; seqlen=128; steps=5; warmup=2; threads=1; seed=1; stages="0 1 2 3"
repeat=1; record=0
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --seq-len) seqlen=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --stages) stages=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --record) record=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "dp.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -n "${RLHF4J_JAR:-}" ]; then
  # shellcheck source=jdk.sh
  . "$root/bench/jdk.sh"
  java=$(jdk25_java)
  ours_cmd=("$java" --enable-native-access=ALL-UNNAMED -jar "$RLHF4J_JAR")
else
  "$root/bin/rlhf4j" --version >/dev/null # builds the jar once, before mpirun starts several ranks
  ours_cmd=("$root/bin/rlhf4j")
fi
export RLHF4J_NO_BUILD=1

out=$(mktemp -d)
for z in $stages; do
  for r in $(seq 1 "$repeat"); do
    d="$out/stage$z-run$r"; mkdir -p "$d"
    cut -d' ' -f1-3 /proc/loadavg > "$d/load_before"
    # shellcheck disable=SC2086
    mpirun -np "$ranks" --bind-to none ${MPIRUN_OPTS:-} "${ours_cmd[@]}" bench data-parallel --model "$model" \
      --batch "$batch" --seq-len "$seqlen" --zero-stage "$z" --steps "$steps" --warmup "$warmup" \
      --threads "$threads" --seed "$seed" --json "$d/ours.json" | grep '^rlhf4j'
    "$py" "$root/bench/peers/dp_torch.py" --model "$model" --world "$ranks" --batch "$batch" --seq-len "$seqlen" \
      --zero-stage "$z" --steps "$steps" --warmup "$warmup" --threads "$threads" --seed "$seed" \
      --json "$d/peer.json" 2> "$d/peer.log" | grep '^torch'
    cut -d' ' -f1-3 /proc/loadavg > "$d/load_after"
  done
done
"$py" - "$out" "$repeat" "$record" "$root" "${DEVICE_LABEL:-}" "$stages" <<'PY'
import datetime, glob, json, os, platform, subprocess, sys
out, repeat, record, root, label, stages = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5], sys.argv[6]
rows = []
for z in stages.split():
    runs = [f"{out}/stage{z}-run{r}" for r in range(1, repeat + 1)]
    o = min((json.load(open(f"{d}/ours.json")) for d in runs), key=lambda j: j["ms_per_step"])
    p = min((json.load(open(f"{d}/peer.json")) for d in runs), key=lambda j: j["ms_per_step"])
    load = "; ".join(f"{open(d + '/load_before').read().strip()} -> {open(d + '/load_after').read().strip()}"
                     for d in runs)
    rows.append((int(z), o, p, load))
o0 = rows[0][1]
print(f"\n{o0['model']}, {o0['world']} ranks x {o0['batch_per_rank']} x {o0['seq_len']} tokens, "
      f"{o0['threads_per_rank']} thread(s) per rank; ratio torch / rlhf4j (above 1: rlhf4j faster)")
print("%-6s %-34s %10s %10s %7s %14s %14s" % ("stage", "peer", "rlhf4j ms", "torch ms", "ratio", "rlhf4j states",
                                               "torch states"))
for z, o, p, load in rows:
    print("%-6d %-34s %10.1f %10.1f %7.2f %14s %14s" % (z, p["peer"], o["ms_per_step"], p["ms_per_step"],
          p["ms_per_step"] / o["ms_per_step"], f"{o['model_states_bytes_rank0']:,}",
          f"{p['model_states_bytes_rank0']:,}"))
if not record:
    sys.exit(0)
try:
    commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
except Exception:
    commit = "unknown"
if not label:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    label = f"cpu: {cpu}, {os.cpu_count()} cores"
date = datetime.date.today().isoformat()
md = os.path.join(root, "bench/RESULTS.md")
text = open(md).read()
head = "## CPU data parallel under ZeRO, 2 ranks (issue 10)"
cols = ("| date | commit | model | ranks x batch x tokens | threads/rank | ZeRO stage | torch peer | rlhf4j ms/step | "
        "torch ms/step | **ratio** | rlhf4j model states, rank 0 | torch model states, rank 0 | load avg |")
new_rows = []
with open(os.path.join(root, "bench/results.jsonl"), "a") as f:
    for z, o, p, load in rows:
        ratio = p["ms_per_step"] / o["ms_per_step"]
        bench = (f"data-parallel {o['model']} {o['world']} ranks x {o['batch_per_rank']} x {o['seq_len']} "
                 f"threads={o['threads_per_rank']}/rank ZeRO-{z} vs torch {p['peer']} (ms/step, median of "
                 f"{len(o['ms_each'])}" + (f", best of {repeat} pairs)" if repeat > 1 else ")"))
        f.write(json.dumps(dict(date=date, device=label, bench=bench, ours=round(o["ms_per_step"], 2),
                                peer=round(p["ms_per_step"], 2), unit="ms/step", ratio=round(ratio, 2),
                                commit=commit)) + "\n")
        new_rows.append(f"| {date} | `{commit}` | {o['model']} | {o['world']} x {o['batch_per_rank']} x {o['seq_len']} | "
                        f"{o['threads_per_rank']} | {z} | {p['peer']} | {o['ms_per_step']:.1f} | "
                        f"{p['ms_per_step']:.1f} | **{ratio:.2f}** | {o['model_states_bytes_rank0']:,} | "
                        f"{p['model_states_bytes_rank0']:,} | {load} |")
if head not in text:
    text = text.rstrip("\n") + "\n\n" + head + "\n\n" + (
        "`bench/dp.sh`: `mpirun -np 2 rlhf4j bench data-parallel` against bench/peers/dp_torch.py (PyTorch over "
        "gloo: DDP for stage 0, DDP + ZeroRedundancyOptimizer for 1, FSDP2 without / with resharding after the "
        "forward for 2 / 3), back to back, the same random-weight OPT, ranks, batch, length and threads, fp32, "
        "dropout 0, AdamW, clip to norm 1. Each step sits between two barriers (the slowest rank's time); the figure "
        "is the median timed step after warm-up. Ratios are torch / rlhf4j (above 1: rlhf4j faster). Model states: "
        "parameters, gradients and optimizer state rank 0 holds between steps. The load average is the one before "
        "and after each pair.\n\n" + cols + "\n|" + "---|" * cols.count(" | ") + "---|\n")
lines = text.split("\n")
start = lines.index(head)
end = start + 1
while end < len(lines) and not lines[end].startswith("|"):
    end += 1
while end < len(lines) and lines[end].startswith("|"):
    end += 1
lines[end:end] = new_rows
tmp = md + ".tmp"
open(tmp, "w").write("\n".join(lines))
os.replace(tmp, md)
print(f"recorded: bench/results.jsonl, bench/RESULTS.md (commit {commit})")
PY
echo "logs in $out"
