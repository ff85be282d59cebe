#!/usr/bin/env bash
# Builds bench/target/benchmarks.jar against a given rlhf4j jar without running any benchmark. The root pom's verify
# phase calls it with the jar that build just made, so that CI compiles the benchmarks and they cannot rot:
#   bench/build.sh --jar=JAR [--offline=true|false] [--repo=LOCAL_REPO] [--out=BUILD_DIR] [--mvn=MVN]
# JAR and its pom (../pom.xml) are installed into the local repository first (the benchmarks depend on
# io.github.rlhf4j:rlhf4j as any user of the library does, so its dependencies come from its pom), then the JMH module
# is compiled, JMH's annotation processor generates and checks the benchmark classes, and the shade plugin packs them
# with their dependencies into BUILD_DIR/benchmarks.jar (default bench/target). --offline=true runs Maven with -o,
# --repo sets the local repository, --mvn the Maven to run (default: mvn on PATH).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="" offline=false repo="" out="$here/target" mvn=mvn
for a in "$@"; do
  case "$a" in
    --jar=*) jar=${a#*=} ;;
    --offline=*) offline=${a#*=} ;;
    --repo=*) repo=${a#*=} ;;
    --out=*) out=${a#*=} ;;
    --mvn=*) mvn=${a#*=} ;;
    *) echo "bench/build.sh: unknown argument '$a'" >&2; exit 2 ;;
  esac
done
[ -n "$jar" ] || { echo "usage: bench/build.sh --jar=JAR [--offline=true|false] [--repo=DIR] [--out=DIR] [--mvn=MVN]" >&2; exit 2; }
[ -f "$jar" ] || { echo "bench/build.sh: no rlhf4j jar at $jar (package rlhf4j first)" >&2; exit 1; }
flags=(-B -q)
[ "$offline" = true ] && flags+=(-o)
[ -n "$repo" ] && flags+=("-Dmaven.repo.local=$repo")
# One Maven run: the install-file goal, then bench's lifecycle up to package (it has no tests).
"$mvn" "${flags[@]}" -f "$here/pom.xml" \
  org.apache.maven.plugins:maven-install-plugin:3.1.3:install-file -Dfile="$jar" -DpomFile="$here/../pom.xml" \
  package -DskipTests -Dbench.buildDir="$out"
echo "bench: compiled $(ls "$out"/classes/io/github/rlhf4j/bench/*Benchmark.class | wc -l) benchmark classes into $out/benchmarks.jar"
