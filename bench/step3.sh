#!/usr/bin/env bash
# DeepSpeed-Chat's step-3 iteration, rlhf4j (`rlhf4j bench step3`) against PyTorch + transformers
# (bench/peers/step3_torch.py), back to back on the same machine with the same shapes, batch, lengths, seeds and
# threads. Prints both tables and the speed ratio torch / rlhf4j (above 1: rlhf4j is faster) of the iteration and of
# each phase.
#
#   PYTHON=.venv-ref/bin/python bench/step3.sh                      opt-125m + opt-125m, B 4, 64 + 64, 2 threads
#   PYTHON=... bench/step3.sh --actor tiny --critic tiny --record    ... and append to results.jsonl and RESULTS.md
#   PYTHON=... bench/step3.sh --actor tiny --critic tiny --sweep-answer "16 32 64" --sweep-batch "2 4" \
#       --plot bench/step3-tiny.png    a sweep of both, drawn as a PNG (each point: the fastest timed iteration)
#
# Options: --actor --critic --batch --prompt-len --answer-len --iters --warmup --threads --seed (both sides),
# --repeat N (N pairs, alternating ours and the peer; each side's fastest median counts: on a shared machine the
# least disturbed run), --record, --sweep-answer LIST, --sweep-batch LIST, --plot PNG. Environment: PYTHON (with
# torch and transformers), RLHF4J_JAR (a built rlhf4j jar; default: bin/rlhf4j, which builds one when the sources
# are newer), DEVICE_LABEL (the machine, for the records).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py=${PYTHON:-python3}
actor=opt-125m; critic=opt-125m; batch=4; plen=64; alen=64; iters=3; warmup=1; threads=2; seed=1
repeat=1; record=0; sweep_answer=""; sweep_batch=""; plot=""
while [ $# -gt 0 ]; do
  case "$1" in
    --actor) actor=$2; shift 2 ;;
    --critic) critic=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --prompt-len) plen=$2; shift 2 ;;
    --answer-len) alen=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --record) record=1; shift ;;
    --sweep-answer) sweep_answer=$2; shift 2 ;;
    --sweep-batch) sweep_batch=$2; shift 2 ;;
    --plot) plot=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "step3.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

# shellcheck source=jdk.sh
. "$root/bench/jdk.sh"
rlhf4j() {
  if [ -n "${RLHF4J_JAR:-}" ]; then
    local java
    java=$(jdk25_java)
    "$java" --enable-native-access=ALL-UNNAMED -jar "$RLHF4J_JAR" "$@"
  else
    "$root/bin/rlhf4j" "$@"
  fi
}

out=$(mktemp -d)
# one point: ours, then the peer, same settings; prints both tables; leaves ours.json / peer.json in $1
pair() { # dir batch answer_len
  local d=$1 b=$2 a=$3
  mkdir -p "$d"
  cut -d' ' -f1-3 /proc/loadavg > "$d/load_before"
  rlhf4j bench step3 --actor "$actor" --critic "$critic" --batch "$b" --prompt-len "$plen" --answer-len "$a" \
    --iters "$iters" --warmup "$warmup" --threads "$threads" --seed "$seed" --json "$d/ours.json" | tee "$d/ours.txt"
  echo
  "$py" "$root/bench/peers/step3_torch.py" --actor "$actor" --critic "$critic" --batch "$b" --prompt-len "$plen" \
    --answer-len "$a" --iters "$iters" --warmup "$warmup" --threads "$threads" --seed "$seed" --json "$d/peer.json" \
    2> "$d/peer.log" | grep -v '^{' | tee "$d/peer.txt"
  cut -d' ' -f1-3 /proc/loadavg > "$d/load_after"
}

if [ -n "$sweep_answer$sweep_batch" ]; then
  [ -n "$plot" ] || plot="$root/bench/step3-sweep.png"
  points="${plot%.png}.jsonl"
  : > "$points.tmp"
  for b in ${sweep_batch:-$batch}; do
    for a in ${sweep_answer:-$alen}; do
      echo "=== sweep point: batch $b, answer $a ==="
      pair "$out/b$b-a$a" "$b" "$a" > "$out/b$b-a$a.log"
      cat "$out/b$b-a$a/ours.json" "$out/b$b-a$a/peer.json" >> "$points.tmp"
      "$py" - "$out/b$b-a$a" <<'PY'
import json, sys
d = sys.argv[1]
o, p = (json.load(open(f"{d}/{n}.json")) for n in ("ours", "peer"))
mo, mp = min(o["iter_times_s"]), min(p["iter_times_s"])
print(f"median: rlhf4j {o['iter_s']:.3f} s/iter, torch {p['iter_s']:.3f}, ratio {p['iter_s'] / o['iter_s']:.2f}; "
      f"fastest: rlhf4j {mo:.3f}, torch {mp:.3f}, ratio {mp / mo:.2f} "
      f"(load {open(d + '/load_before').read().strip()} -> {open(d + '/load_after').read().strip()})")
PY
    done
  done
  mv "$points.tmp" "$points"
  rlhf4j bench step3-plot "$points" --out "$plot" --stat min \
    --title "step 3: rlhf4j vs PyTorch, $actor + $critic, prompt $plen, $threads threads; fastest of $iters iterations"
  echo "logs in $out"
  exit 0
fi

for r in $(seq 1 "$repeat"); do
  [ "$repeat" = 1 ] || echo "=== pair $r of $repeat ==="
  pair "$out/run$r" "$batch" "$alen"
done
"$py" - "$out" "$repeat" "$record" "$root" "${DEVICE_LABEL:-}" <<'PY'
import datetime, json, os, platform, subprocess, sys
out, repeat, record, root, label = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
runs = [f"{out}/run{r}" for r in range(1, repeat + 1)]
ours = [json.load(open(f"{d}/ours.json")) for d in runs]
peers = [json.load(open(f"{d}/peer.json")) for d in runs]
loads = [f"{open(d + '/load_before').read().strip()} -> {open(d + '/load_after').read().strip()}" for d in runs]
if repeat > 1:
    for r in range(repeat):
        print(f"pair {r + 1}: rlhf4j {ours[r]['iter_s']:.3f} s/iter, torch {peers[r]['iter_s']:.3f} s/iter "
              f"(load {loads[r]})")
o = min(ours, key=lambda j: j["iter_s"])
p = min(peers, key=lambda j: j["iter_s"])
load = "; ".join(loads)
names = [("generation", "generation"), ("experience", "experience forwards"), ("actor_training", "actor training"),
         ("critic_training", "critic training"), ("other", "other")]
print(f"\nrlhf4j vs torch {p.get('torch', '?')}: speed ratio torch / rlhf4j (above 1: rlhf4j faster); load average {load}")
print("%-22s %12s %12s %8s" % ("phase", "rlhf4j s", "torch s", "ratio"))
ratios = {}
for k, n in names:
    a, b = o["phases_s"][k], p["phases_s"][k]
    ratios[k] = b / a if a > 0 else float("nan")
    print("%-22s %12.4g %12.4g %8.2f" % (n, a, b, ratios[k]))
ratio = p["iter_s"] / o["iter_s"]
print("%-22s %12.4g %12.4g %8.2f" % ("iteration (median)", o["iter_s"], p["iter_s"], ratio))
if not record:
    sys.exit(0)
try:
    commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
except Exception:
    commit = "unknown"
if not label:
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
                 platform.processor())
    label = f"cpu: {model}, {os.cpu_count()} cores"
date = datetime.date.today().isoformat()
bench = (f"step3 {o['actor']} + {o['critic']} batch {o['batch']} prompt {o['prompt_len']} + answer {o['answer_len']} "
         f"threads={o['threads']} (s/iter, median of {o['iters']}" + (f", best of {repeat} pairs)" if repeat > 1 else ")"))
line = dict(date=date, device=label, bench=bench, ours=round(o["iter_s"], 4), peer=round(p["iter_s"], 4),
            unit="s/iter", ratio=round(ratio, 2), commit=commit)
with open(os.path.join(root, "bench/results.jsonl"), "a") as f:
    f.write(json.dumps(line) + "\n")
# RESULTS.md: one row in the step-3 table, made on first use
md = os.path.join(root, "bench/RESULTS.md")
text = open(md).read()
head = "## CPU step 3, DeepSpeed-Chat's PPO iteration (issue 11)"
cols = ("| date | commit | actor + critic | B | prompt + answer | threads | rlhf4j s/iter | torch s/iter | "
        "**ratio** | generation | experience | actor train | critic train | other | load avg (1/5/15 min) |")
row = (f"| {date} | `{commit}` | {o['actor']} + {o['critic']} | {o['batch']} | {o['prompt_len']} + {o['answer_len']} | "
       f"{o['threads']} | {o['iter_s']:.3f} | {p['iter_s']:.3f} | **{ratio:.2f}** | "
       + " | ".join(f"{ratios[k]:.2f}" for k, _ in names) + f" | {load} |")
if head not in text:
    text = text.rstrip("\n") + "\n\n" + head + "\n\n" + (
        "`bench/step3.sh`: `rlhf4j bench step3` against bench/peers/step3_torch.py (PyTorch + transformers, DS-Chat's "
        "step-3 math), back to back, same shapes, batch, lengths and threads, fp32, dropout 0, 1 PPO epoch; median "
        "iteration after warm-up. Ratios are torch / rlhf4j seconds (above 1: rlhf4j faster), per phase too. The "
        "machine is shared with other work: the load average is the one before and after the pair.\n\n"
        + cols + "\n|" + "---|" * cols.count(" | ") + "---|\n")
lines = text.split("\n")
start = lines.index(head)
end = start + 1
while end < len(lines) and not lines[end].startswith("|"):
    end += 1
while end < len(lines) and lines[end].startswith("|"):
    end += 1
lines.insert(end, row)
tmp = md + ".tmp"
open(tmp, "w").write("\n".join(lines))
os.replace(tmp, md)
print(f"recorded: bench/results.jsonl, bench/RESULTS.md (commit {commit})")
PY
echo "logs in $out"
