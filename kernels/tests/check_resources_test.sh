#!/usr/bin/env bash
# Tests of kernels/check_resources.sh on planted ptxas reports and budget lines: a clean report passes; a spill, a
# kernel over its register or shared-memory budget, a kernel with no budget line, a stale budget line and a malformed
# one each fail with a message naming the kernel (or line) and the figure. Run by `make -C kernels check`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
check="$here/../check_resources.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# A report shaped like nvcc 13's, with an sm_80 section whose figures must be ignored when checking sm_90.
report() { # $1 = spill stores of the bf16 kernel, $2 = its registers, $3 = its smem
  cat <<R
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z16gemm_bf16_kernelILb0ELb1EfEvPKvS1_Pvi' for 'sm_80'
ptxas info    : Function properties for _Z16gemm_bf16_kernelILb0ELb1EfEvPKvS1_Pvi
    0 bytes stack frame, 512 bytes spill stores, 512 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 99999 bytes smem, 400 bytes cmem[0]
ptxas info    : Compile time = 10.0 ms
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z16gemm_bf16_kernelILb0ELb1EfEvPKvS1_Pvi' for 'sm_90'
ptxas info    : Function properties for _Z16gemm_bf16_kernelILb0ELb1EfEvPKvS1_Pvi
    0 bytes stack frame, $1 bytes spill stores, $1 bytes spill loads
ptxas info    : Used $2 registers, used 1 barriers, $3 bytes smem
ptxas info    : Compile time = 10.0 ms
ptxas info    : Function properties for __internal_helper
    16 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function 'gemm_scale_kernel' for 'sm_90'
ptxas info    : Function properties for gemm_scale_kernel
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 16 registers, used 0 barriers
ptxas info    : Compile time = 1.0 ms
R
}
cat > "$tmp/a.cu" <<'EOF2'
// @budget gemm_bf16_kernel regs<=128 smem<=40960
// @budget gemm_scale_kernel regs<=32 smem<=0
__global__ void gemm_scale_kernel() {}
EOF2

expect() { # $1 = pass|fail, $2 = description, $3 = report file, $4... = sources; with fail, $EXPECT_MSG must appear
  local want=$1 what=$2 rep=$3 out rc
  shift 3
  set +e
  out=$("$check" "$rep" "$@" 2>&1)
  rc=$?
  set -e
  if [ "$want" = pass ] && [ $rc -ne 0 ]; then
    echo "FAILED: $what: expected success, got exit $rc:"; echo "$out"; failures=$((failures + 1))
  elif [ "$want" = fail ] && { [ $rc -ne 1 ] || ! grep -qF -- "$EXPECT_MSG" <<<"$out"; }; then
    echo "FAILED: $what: expected exit 1 and \"$EXPECT_MSG\", got exit $rc:"; echo "$out"; failures=$((failures + 1))
  else
    echo "passed: $what"
  fi
}

report 0 96 40960 > "$tmp/clean.log"
expect pass "a clean report within budget (sm_80 figures ignored)" "$tmp/clean.log" "$tmp/a.cu"

report 8 96 40960 > "$tmp/spill.log"
EXPECT_MSG="_Z16gemm_bf16_kernelILb0ELb1EfEvPKvS1_Pvi (sm_90): spills 8 bytes of stores and 8 bytes of loads" \
  expect fail "a planted spill" "$tmp/spill.log" "$tmp/a.cu"

report 0 168 40960 > "$tmp/regs.log"
EXPECT_MSG="_Z16gemm_bf16_kernelILb0ELb1EfEvPKvS1_Pvi (sm_90): 168 registers, over its budget regs<=128" \
  expect fail "registers over budget" "$tmp/regs.log" "$tmp/a.cu"

report 0 96 49152 > "$tmp/smem.log"
EXPECT_MSG="49152 bytes static shared memory, over its budget smem<=40960" \
  expect fail "shared memory over budget" "$tmp/smem.log" "$tmp/a.cu"

EXPECT_MSG="gemm_scale_kernel (sm_90): no budget line" \
  expect fail "a kernel without a budget line" "$tmp/clean.log" <(grep -v gemm_scale "$tmp/a.cu")

{ cat "$tmp/a.cu"; echo "// @budget gemm_renamed_kernel regs<=64 smem<=0"; } > "$tmp/stale.cu"
EXPECT_MSG="names \"gemm_renamed_kernel\", which matches no sm_90 kernel" \
  expect fail "a stale budget line" "$tmp/clean.log" "$tmp/stale.cu"

{ cat "$tmp/a.cu"; echo "// @budget gemm_scale regs=32"; } > "$tmp/malformed.cu"
EXPECT_MSG="malformed budget line at" expect fail "a malformed budget line" "$tmp/clean.log" "$tmp/malformed.cu"

# The longest matching name wins: a tighter line for one instance applies to it alone.
{ cat "$tmp/a.cu"; echo "// @budget gemm_bf16_kernelILb0ELb1E regs<=64 smem<=40960"; } > "$tmp/specific.cu"
EXPECT_MSG="96 registers, over its budget regs<=64" expect fail "the most specific budget line wins" "$tmp/clean.log" "$tmp/specific.cu"

printf 'ptxas info    : 0 bytes gmem\n' > "$tmp/empty.log"
EXPECT_MSG="no sm_90 entry functions" expect fail "a report without sm_90 kernels" "$tmp/empty.log" "$tmp/a.cu"

if [ $failures -ne 0 ]; then echo "check_resources_test: $failures FAILED"; exit 1; fi
echo "check_resources_test: all passed"
