#!/usr/bin/env bash
# Builds rlhf4j and its JMH benchmarks, then runs them: bench/run.sh [JMH arguments], e.g.
#   bench/run.sh GemmBenchmark                     every parameter combination
#   bench/run.sh GemmBenchmark -p n=1024 -rf json -rff /tmp/gemm.json
# The OpenBLAS peer needs libopenblas.so.0 (Debian: apt-get install libopenblas0-pthread).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
(cd "$root" && mvn -B -q -DskipTests install)
(cd "$root/bench" && mvn -B -q package)
# shellcheck source=jdk.sh
. "$root/bench/jdk.sh"
java=$(jdk25_java)
exec "$java" --enable-native-access=ALL-UNNAMED -jar "$root/bench/target/benchmarks.jar" "$@"
