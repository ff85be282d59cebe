#!/usr/bin/env bash
# check_resources.sh: the static resource check of the CUDA kernels (issue 9), run by `make -C kernels check`.
#
#   kernels/check_resources.sh REPORT [SOURCE.cu ...]      (sources default to kernels/*.cu beside this script)
#
# REPORT is nvcc's `-Xptxas -v` output (the Makefile writes the sm_90 one to $(OUT)/ptxas-sm90.log). Every kernel
# (ptxas "entry function") compiled for the checked architecture must
#   - spill nothing (0 bytes spill stores and loads): a spill is local-memory traffic in the inner loop;
#   - have a budget line in one of the sources, and stay within it:
#         // @budget <name> regs<=N smem<=BYTES [stack<=BYTES]
#     <name> is a substring of the kernel's mangled name (the kernel's identifier appears in it verbatim, e.g.
#     `gemm_bf16_kernel` matches `_Z16gemm_bf16_kernelILb0ELb1EfEv...`); when several lines match a kernel, the longest
#     <name> wins, so a template instance can have its own line. smem is the STATIC shared memory ptxas reports (dynamic
#     shared memory is sized at launch, where launch_kernel checks it against the device). stack is optional; a kernel
#     with a stack frame and no stack<= figure gets a warning (a run-time-indexed array went to local memory).
# and every budget line must match at least one kernel (a stale or misspelled line fails too).
# Exit status 0 when all holds, 1 with one line per violation otherwise, 2 on a usage error or an unreadable report.
# Plain bash + awk: CI needs no Python. ARCH=sm_80 checks another architecture's entries in the same kind of report.
set -euo pipefail

arch=${ARCH:-sm_90}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ $# -lt 1 ]; then
  echo "usage: $0 PTXAS_REPORT [SOURCE.cu ...]" >&2
  exit 2
fi
report=$1
shift
if [ ! -r "$report" ]; then
  echo "check_resources: cannot read the ptxas report '$report' (build it with: make -C kernels ptxas)" >&2
  exit 2
fi
if [ $# -gt 0 ]; then
  sources=("$@")
else
  shopt -s nullglob
  sources=("$here"/*.cu)
  shopt -u nullglob
fi
if [ ${#sources[@]} -eq 0 ]; then
  echo "check_resources: no kernel sources (*.cu) to read budget lines from" >&2
  exit 2
fi
for f in "${sources[@]}"; do
  [ -r "$f" ] || { echo "check_resources: cannot read source '$f'" >&2; exit 2; }
done

# Budget lines as "B<TAB>file:line<TAB>name<TAB>regs<TAB>smem<TAB>stack" (-1 = not given); malformed ones as "E...".
budgets=$(awk '
  /\/\/[ \t]*@budget([ \t]|$)/ {
    line = $0
    sub(/.*\/\/[ \t]*@budget[ \t]*/, "", line)
    n = split(line, f, /[ \t]+/)
    name = f[1]; regs = -1; smem = -1; stack = -1; bad = (n < 3 || name == "" || name ~ /<=/)
    for (i = 2; i <= n; i++) {
      if (f[i] == "") continue
      if (f[i] ~ /^regs<=[0-9]+$/) { regs = substr(f[i], 7) + 0 }
      else if (f[i] ~ /^smem<=[0-9]+$/) { smem = substr(f[i], 7) + 0 }
      else if (f[i] ~ /^stack<=[0-9]+$/) { stack = substr(f[i], 8) + 0 }
      else bad = 1
    }
    if (regs < 0 || smem < 0) bad = 1
    if (bad) printf "E\t%s:%d\t%s\n", FILENAME, FNR, $0
    else printf "B\t%s:%d\t%s\t%d\t%d\t%d\n", FILENAME, FNR, name, regs, smem, stack
  }' "${sources[@]}")

# The report, one line per kernel of $arch: "K<TAB>name<TAB>regs<TAB>smem<TAB>spill_st<TAB>spill_ld<TAB>stack".
# ptxas prints, per entry function:
#   ptxas info    : Compiling entry function '_Z...' for 'sm_90'
#   ptxas info    : Function properties for _Z...
#       0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
#   ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem, 372 bytes cmem[0]
# ("Function properties" also appear for non-inlined device functions; only entry functions are kernels.)
kernels=$(awk -v arch="$arch" '
  function flush() {
    if (cur != "") {
      if (!(cur in seen)) { order[++nk] = cur; seen[cur] = 1 }
      if (regs[cur] < r) regs[cur] = r
      if (smem[cur] < s) smem[cur] = s
      if (sst[cur] < st) sst[cur] = st
      if (sld[cur] < ld) sld[cur] = ld
      if (stk[cur] < fr) stk[cur] = fr
      if (!gotused) nouse[cur] = 1
    }
    cur = ""; r = 0; s = 0; st = 0; ld = 0; fr = 0; props = 0; gotused = 0
  }
  /Compiling entry function/ {
    flush()
    if (match($0, /entry function \047[^\047]+\047 for \047[^\047]+\047/)) {
      t = substr($0, RSTART, RLENGTH)
      split(t, q, "\047")
      if (q[4] == arch) cur = q[2]
    }
    next
  }
  cur != "" && /Function properties for / {
    nm = $0; sub(/.*Function properties for[ \t]*/, "", nm); sub(/[ \t]+$/, "", nm)
    props = (nm == cur)
    next
  }
  cur != "" && props && /bytes stack frame/ {
    if (match($0, /[0-9]+ bytes stack frame/)) fr = substr($0, RSTART, RLENGTH) + 0
    if (match($0, /[0-9]+ bytes spill stores/)) st = substr($0, RSTART, RLENGTH) + 0
    if (match($0, /[0-9]+ bytes spill loads/)) ld = substr($0, RSTART, RLENGTH) + 0
    props = 0
    next
  }
  cur != "" && /Used [0-9]+ registers/ {
    match($0, /Used [0-9]+ registers/); r = substr($0, RSTART + 5, RLENGTH - 15) + 0
    if (match($0, /[0-9]+ bytes smem/)) s = substr($0, RSTART, RLENGTH) + 0
    gotused = 1
    flush()
    next
  }
  END {
    flush()
    for (i = 1; i <= nk; i++) {
      k = order[i]
      printf "K\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", k, regs[k], smem[k], sst[k], sld[k], stk[k], (k in nouse)
    }
  }' "$report")

if [ -z "$kernels" ]; then
  echo "check_resources: no $arch entry functions in '$report' (is it an nvcc -Xptxas -v report for $arch?)" >&2
  exit 1
fi

# Join kernels with budgets and judge.
printf '%s\n%s\n' "$budgets" "$kernels" | awk -F'\t' -v arch="$arch" -v report="$report" '
  $1 == "E" { bad[++nbad] = "malformed budget line at " $2 " (want: // @budget <name> regs<=N smem<=BYTES [stack<=BYTES]): " $3; next }
  $1 == "B" { nb++; bsrc[nb] = $2; bname[nb] = $3; breg[nb] = $4; bsmem[nb] = $5; bstack[nb] = $6; bused[nb] = 0; next }
  $1 == "K" { nk++; kn[nk] = $2; kr[nk] = $3; ks[nk] = $4; kst[nk] = $5; kld[nk] = $6; kfr[nk] = $7; knouse[nk] = $8; next }
  END {
    fails = 0
    for (i = 1; i <= nbad; i++) { print "FAIL: " bad[i]; fails++ }
    for (k = 1; k <= nk; k++) {
      name = kn[k]; f0 = fails
      if (knouse[k]) { printf "FAIL: %s (%s): no \"Used N registers\" line in the report\n", name, arch; fails++ }
      if (kst[k] > 0 || kld[k] > 0) {
        printf "FAIL: %s (%s): spills %d bytes of stores and %d bytes of loads (no spills allowed)\n", name, arch, kst[k], kld[k]
        fails++
      }
      best = 0
      for (b = 1; b <= nb; b++)
        if (index(name, bname[b]) > 0 && (best == 0 || length(bname[b]) > length(bname[best]))) best = b
      for (b = 1; b <= nb; b++) if (index(name, bname[b]) > 0) bused[b] = 1
      if (best == 0) {
        printf "FAIL: %s (%s): no budget line (add \"// @budget <name> regs<=N smem<=BYTES\" to its header comment; it uses %d registers, %d bytes static smem)\n", name, arch, kr[k], ks[k]
        fails++
        continue
      }
      where = bsrc[best] " \"" bname[best] "\""
      if (kr[k] > breg[best]) { printf "FAIL: %s (%s): %d registers, over its budget regs<=%d (%s)\n", name, arch, kr[k], breg[best], where; fails++ }
      if (ks[k] > bsmem[best]) { printf "FAIL: %s (%s): %d bytes static shared memory, over its budget smem<=%d (%s)\n", name, arch, ks[k], bsmem[best], where; fails++ }
      if (bstack[best] >= 0 && kfr[k] > bstack[best]) { printf "FAIL: %s (%s): %d bytes stack frame, over its budget stack<=%d (%s)\n", name, arch, kfr[k], bstack[best], where; fails++ }
      else if (bstack[best] < 0 && kfr[k] > 0) printf "warning: %s (%s): %d bytes stack frame (local memory; a run-time-indexed register array?)\n", name, arch, kfr[k]
      if (fails == f0) printf "ok: %s (%s): regs %d/%d, smem %d/%d, stack %d, spills 0\n", name, arch, kr[k], breg[best], ks[k], bsmem[best], kfr[k]
    }
    for (b = 1; b <= nb; b++)
      if (!bused[b]) { printf "FAIL: budget line at %s names \"%s\", which matches no %s kernel in %s (stale or misspelled)\n", bsrc[b], bname[b], arch, report; fails++ }
    if (fails) { printf "check_resources: %d violation(s) among %d %s kernels\n", fails, nk, arch; exit 1 }
    printf "check_resources: %d %s kernels, no spills, all within their budgets\n", nk, arch
  }'
