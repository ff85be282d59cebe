#!/usr/bin/env bash
# bench/gpu/run.sh: the GPU suite of rlhf4j on a machine that has a GPU but no Java, no Maven and no network (the
# device machine of this workplace: a copy of the repository, 64 MiB in all, and one command).
#
#   bench/gpu/run.sh pack OUTDIR       on the development machine, after `mvn -B -DskipTests package` (and, for the
#                                       benchmarks, `(cd bench && mvn -B -q package)`): writes OUTDIR/run.sh (this
#                                       script), OUTDIR/rlhf4j-gpu.tar.gz and OUTDIR/PACKED.txt, under 64 MiB in all.
#   OUTDIR/run.sh run [options]         on the GPU machine: unpacks once into $RLHF4J_GPU_WORK (default
#                                       /tmp/rlhf4j-gpu), runs the tests tagged `gpu` with the JUnit console launcher,
#                                       GemmKernelOnGpuTest again with cuBLASLt switched off (so our own GEMM kernels
#                                       run on the device too), then every benchmark bench/gpu/*.sh; reports go to
#                                       $OUT (the device tool's folder) or OUTDIR/out:
#                                         summary.txt, env.txt, tests.log, tests-own-gemm.log, junit/*.xml, bench.log
#       --no-bench                      tests only
#       --no-tests                      benchmarks only
#       --bench NAME                    only bench/gpu/NAME.sh (repeatable), e.g. --no-tests --bench attention: one
#                                       device call holds at most 10 minutes, less than all the benchmarks together
#       --select-class C / --include-tag T / --select-package P
#                                       what to test instead of the tag `gpu` (repeatable; any one replaces the default)
#   OUTDIR/run.sh java ARGS...          the packed JDK's java (unpacking first), e.g. `run.sh java -version`
#
# What the pack holds (rlhf4j-gpu.tar.gz unpacks to a tree laid out like a built checkout, so the benchmark scripts
# run unchanged with it as their root):
#   jdk/                 a jlink'd JDK 25: java.base, java.logging, java.management, jdk.management, jdk.unsupported,
#                        jdk.incubator.vector, and java.xml for the console launcher's XML reports (what the packed
#                        jars use on the GPU paths: Jackson and Gson use java.sql only when present; jdeps lists more,
#                        for the jars left out below), --strip-debug --no-man-pages --no-header-files --compress
#                        zip-9, libjvm.so stripped
#   target/classes/      rlhf4j's classes and native libraries (librlhf4j_cpu.so, librlhf4j_cuda.so; not the emulated
#                        build), target/test-classes/ the test classes and resources (fixtures)
#   target/lib/          the runtime dependencies, less the chat-template and plotting stacks (jinjava and what only it
#                        pulls in, xchart): they need java.desktop (java.beans, AWT), 13 MB more of JDK, and no GPU
#                        test or benchmark renders a template or a plot. Jars that carry native libraries for every
#                        platform (DJL tokenizers 18.7 MB, JNA, snappy-java, jline) keep only linux-x86_64's.
#                        PACK_FULL=1 keeps everything (and adds java.desktop), if it fits.
#   junit-platform-console-standalone.jar  (from the local Maven repository, fetched there by mvn if missing)
#   bench/               gpu/*.sh, peers/*, target/benchmarks.jar when built (only JMH, its two dependencies and the
#                        benchmark classes: rlhf4j and its dependencies come from target/, so the benchmarks run the
#                        packed build, natives included), and a run.sh that starts JMH with the packed java instead
#                        of building with Maven
# With the device tool (one command, the repository plus carried folders, 64 MiB in all): pack into an ignored folder
# of the checkout and carry it, e.g.
#   echo /.gpu-pack/ >> .git/info/exclude; bench/gpu/run.sh pack .gpu-pack
#   device run: carry [".gpu-pack"], command ".gpu-pack/run.sh run"   (summary.txt and the logs come back from $OUT)
# Environment for pack: RLHF4J_BUILD (the Maven build folder, default target/), RLHF4J_PACK_CLASSPATH (the runtime
# class path to take the dependency jars from, ':'-separated; default: RLHF4J_BUILD/lib, else `mvn
# dependency:build-classpath`), JAVA_HOME or a JDK 25 under /usr/lib/jvm (for jlink), PACK_GZIP (gzip level, 6).
set -euo pipefail

die() { echo "bench/gpu/run.sh: $*" >&2; exit 1; }
note() { echo "bench/gpu/run.sh: $*" >&2; }

LIMIT_BYTES=$((64 * 1024 * 1024))
# The chat-template (jinjava) and plotting (xchart) stacks, left out unless PACK_FULL=1 (see above). Artifact ids;
# commons-lang3 stays (commons-compress, which DJL uses, needs it).
DROP_JARS="jinjava guava failureaccess listenablefuture jsr305 checker-qual j2objc-annotations javassist re2j
commons-net java-ipv6 annotations jackson-dataformat-yaml snakeyaml jackson-datatype-jdk8 big-math
error_prone_annotations immutables-exceptions algebra hubspot-style immutable-collection-encodings encode
derive4j-annotation xchart"
MODULES="java.base,java.logging,java.management,jdk.management,jdk.unsupported,jdk.incubator.vector,java.xml"
FULL_MODULES="$MODULES,java.desktop,java.sql,java.naming,jdk.httpserver"

# ---- pack ------------------------------------------------------------------------------------------------------------

find_jdk25() {
  local cand
  for cand in ${JAVA_HOME:+"$JAVA_HOME"} /usr/lib/jvm/*; do
    [ -x "$cand/bin/jlink" ] || continue
    local v
    v=$("$cand/bin/java" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
    if [ "${v%%[.+-]*}" -ge 25 ] 2>/dev/null; then echo "$cand"; return 0; fi
  done
  return 1
}

# The version of the JUnit Platform that matches the project's JUnit Jupiter (pom.xml's junit.version).
junit_platform_version() {
  local root=$1 v
  v=$(sed -n 's:.*<junit.version>\([^<]*\)</junit.version>.*:\1:p' "$root/pom.xml" | head -1)
  [ -n "$v" ] || die "no <junit.version> in $root/pom.xml"
  case "$v" in
    5.*) echo "1.${v#5.}" ;;  # JUnit 5.x.y ships Platform 1.x.y
    *) echo "$v" ;;           # from JUnit 6 on, one version number for all
  esac
}

console_jar() {
  local root=$1 dest=$2 v repo jar
  v=$(junit_platform_version "$root")
  repo=${MAVEN_REPO:-$HOME/.m2/repository}
  jar="$repo/org/junit/platform/junit-platform-console-standalone/$v/junit-platform-console-standalone-$v.jar"
  if [ ! -f "$jar" ]; then
    note "fetching junit-platform-console-standalone $v with mvn (not in $repo yet)"
    (cd "$root" && mvn -B -q -Dstyle.color=never dependency:copy -Dartifact="org.junit.platform:junit-platform-console-standalone:$v" \
      -DoutputDirectory="$(dirname "$dest")" -Dmdep.stripVersion=true) ||
      die "could not get junit-platform-console-standalone $v (mvn dependency:copy failed; network?)"
    [ -f "$(dirname "$dest")/junit-platform-console-standalone.jar" ] || die "mvn did not write the console launcher"
    [ "$(dirname "$dest")/junit-platform-console-standalone.jar" = "$dest" ] ||
      mv "$(dirname "$dest")/junit-platform-console-standalone.jar" "$dest"
    return
  fi
  cp "$jar" "$dest"
}

# The runtime dependency jars, one path a line.
dependency_jars() {
  local root=$1 build=$2 cp
  if [ -n "${RLHF4J_PACK_CLASSPATH:-}" ]; then
    cp=$RLHF4J_PACK_CLASSPATH
    echo "RLHF4J_PACK_CLASSPATH" > "$DEPS_FROM"
  elif compgen -G "$build/lib/*.jar" >/dev/null; then
    if [ "$root/pom.xml" -nt "$build/lib" ]; then
      note "WARNING: $build/lib is older than pom.xml: run mvn package again if the dependencies changed"
    fi
    echo "$build/lib" > "$DEPS_FROM"
    printf '%s\n' "$build"/lib/*.jar
    return
  else
    echo "mvn dependency:build-classpath" > "$DEPS_FROM"
    note "no $build/lib (run mvn package first to skip this): asking mvn for the runtime class path"
    local f
    f=$(mktemp)
    (cd "$root" && mvn -B -q -Dstyle.color=never dependency:build-classpath -Dmdep.includeScope=runtime -Dmdep.outputFile="$f") >&2 ||
      die "mvn dependency:build-classpath failed"
    cp=$(cat "$f")
    rm -f "$f"
  fi
  tr ':' '\n' <<<"$cp" | grep '\.jar$' | grep -v -E '/(junit-|opentest4j-|apiguardian-|surefire|maven-|plexus-)' || true
}

# A copy of jar $1 at $2 without the native libraries of other platforms (a jar that has none is copied as is).
# Written with the JDK's own tools (jar, java): no zip/unzip needed.
trim_jar() {
  local src=$1 dst=$2 java=$3
  if ! "$java/bin/jar" tf "$src" | grep -q -i -E '\.(so|dll|dylib|jnilib)$'; then cp "$src" "$dst"; return; fi
  "$java/bin/java" -cp "$TRIM_DIR" JarTrim "$src" "$dst"
}

# Writes and compiles JarTrim (once per pack: the source launcher would compile it for every jar).
write_trim_tool() {
  TRIM_DIR="$1/jartrim"
  TRIM_SRC="$TRIM_DIR/JarTrim.java"
  mkdir -p "$TRIM_DIR"
  cat > "$TRIM_SRC" <<'JAVA'
import java.io.*;
import java.nio.file.*;
import java.util.zip.*;

/**
 * Copies a jar without native libraries for platforms other than linux-x86_64 (paths name the platform); with more
 * arguments, keeps only the entries under those path prefixes.
 */
public class JarTrim {
    static boolean otherPlatform(String name) {
        String n = name.toLowerCase();
        if (!n.matches(".*\\.(so(\\.[0-9.]+)?|dll|dylib|jnilib|a)$")) return false;
        boolean linuxX64 = n.matches(".*(linux[-_/]?(x86[-_]64|amd64|x64)|x86[-_]64[-_/]linux|amd64[-_/]linux).*")
                || n.matches(".*/linux/x86_64/.*") || n.matches(".*/linux64/.*");
        return !linuxX64;
    }

    public static void main(String[] args) throws IOException {
        long kept = 0, dropped = 0;
        try (ZipInputStream in = new ZipInputStream(new BufferedInputStream(Files.newInputStream(Path.of(args[0]))));
             ZipOutputStream out = new ZipOutputStream(new BufferedOutputStream(Files.newOutputStream(Path.of(args[1]))))) {
            out.setLevel(9);
            for (ZipEntry e; (e = in.getNextEntry()) != null; ) {
                boolean keep = args.length <= 2;
                for (int i = 2; i < args.length && !keep; i++) keep = e.getName().startsWith(args[i]);
                if (!keep || otherPlatform(e.getName())) { dropped++; continue; }
                ZipEntry c = new ZipEntry(e.getName());
                if (e.getLastModifiedTime() != null) c.setLastModifiedTime(e.getLastModifiedTime());
                out.putNextEntry(c);
                in.transferTo(out);
                out.closeEntry();
                kept++;
            }
        }
        System.err.println("  " + Path.of(args[0]).getFileName() + ": kept " + kept + " entries, dropped " + dropped
                + (args.length > 2 ? "" : " native libraries of other platforms"));
    }
}
JAVA
  "$2/bin/javac" -d "$TRIM_DIR" "$TRIM_SRC" || die "could not compile JarTrim"
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

pack() {
  local out=${1:-}
  [ -n "$out" ] || die "usage: run.sh pack OUTDIR"
  local root build jdk modules stage
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  [ -f "$root/pom.xml" ] || die "pack runs from the repository (bench/gpu/run.sh), not from a packed folder"
  build=${RLHF4J_BUILD:-$root/target}
  [ -d "$build/classes/io/github/rlhf4j" ] || die "no compiled classes in $build/classes: run mvn -B -DskipTests package"
  [ -d "$build/test-classes/io/github/rlhf4j" ] || die "no test classes in $build/test-classes: run mvn -B -DskipTests package (it compiles them)"
  jdk=$(find_jdk25) || die "needs a JDK 25 with jlink (JAVA_HOME, or one under /usr/lib/jvm)"
  local native_dir
  native_dir=$(ls -d "$build"/classes/native/linux-x86_64 2>/dev/null || true)
  [ -n "$native_dir" ] && [ -f "$native_dir/librlhf4j_cpu.so" ] || die "no librlhf4j_cpu.so under $build/classes/native/linux-x86_64"
  if [ ! -f "$native_dir/librlhf4j_cuda.so" ]; then
    note "WARNING: no librlhf4j_cuda.so in $native_dir (built when nvcc is on PATH): the GPU tests will skip"
  fi

  mkdir -p "$out"
  out="$(cd "$out" && pwd)"
  stage=$(mktemp -d "${TMPDIR:-/tmp}/rlhf4j-pack.XXXXXX")
  PACK_STAGE=$stage
  trap 'rm -rf "$PACK_STAGE"' EXIT
  local t0=$SECONDS

  modules=$MODULES
  [ -n "${PACK_FULL:-}" ] && modules=$FULL_MODULES
  note "jlink ($modules) from $jdk"
  if ! "$jdk/bin/jlink" --add-modules "$modules" --strip-debug --no-man-pages --no-header-files --compress zip-9 \
    --output "$stage/jdk" > "$stage/jlink.log" 2>&1; then
    cat "$stage/jlink.log" >&2
    die "jlink failed"
  fi
  grep -v "Using incubator modules" "$stage/jlink.log" >&2 || true
  rm -f "$stage/jlink.log"
  if command -v strip >/dev/null; then strip --strip-unneeded "$stage/jdk/lib/server/libjvm.so" || true; fi

  mkdir -p "$stage/target/lib" "$stage/bench/target" "$stage/bench/gpu"
  # Classes, resources and native libraries; not the emulated CUDA build, which only the CPU tests use.
  cp -r "$build/classes" "$stage/target/classes"
  rm -f "$stage"/target/classes/native/*/librlhf4j_cuda_emu.so
  cp -r "$build/test-classes" "$stage/target/test-classes"

  write_trim_tool "$stage" "$jdk"
  DEPS_FROM="$stage/deps-from"
  local dropped="" jar name aid n=0
  while IFS= read -r jar; do
    [ -n "$jar" ] || continue
    [ -f "$jar" ] || die "dependency jar $jar does not exist"
    name=$(basename "$jar")
    aid=$(sed -E 's/-[0-9][^-]*(-[A-Za-z0-9.]+)*\.jar$//' <<<"$name")
    if [ -z "${PACK_FULL:-}" ] && [[ " $(echo $DROP_JARS) " == *" $aid "* ]]; then
      dropped="$dropped $name"
      continue
    fi
    trim_jar "$jar" "$stage/target/lib/$name" "$jdk"
    n=$((n + 1))
  done < <(dependency_jars "$root" "$build")
  [ "$n" -gt 0 ] || die "no dependency jars found (see the messages above)"

  console_jar "$root" "$stage/junit-platform-console-standalone.jar"

  cp "$root"/bench/gpu/*.sh "$stage/bench/gpu/"
  cp "${BASH_SOURCE[0]}" "$stage/bench/gpu/run.sh"
  if [ -d "$root/bench/peers" ]; then cp -r "$root/bench/peers" "$stage/bench/peers"; fi
  local bench_note="no bench/target/benchmarks.jar (build it with: cd bench && mvn -B -q package): GPU benchmarks that need it will fail"
  if [ -f "$root/bench/target/benchmarks.jar" ]; then
    "$jdk/bin/java" -cp "$TRIM_DIR" JarTrim "$root/bench/target/benchmarks.jar" "$stage/bench/target/benchmarks.jar" \
      org/openjdk/jmh/ joptsimple/ org/apache/commons/math3/ io/github/rlhf4j/bench/ META-INF/BenchmarkList \
      META-INF/CompilerHints META-INF/MANIFEST.MF
    bench_note="benchmarks.jar from $(date -r "$root/bench/target/benchmarks.jar" '+%F %T')"
    if [ "$root/bench/target/benchmarks.jar" -ot "$build/classes" ]; then
      bench_note="$bench_note (OLDER than $build/classes: rebuild it for current numbers)"
      note "WARNING: bench/target/benchmarks.jar is older than the classes"
    fi
  else
    note "WARNING: $bench_note"
  fi
  # The benchmark scripts call bench/run.sh, which builds with Maven; in the pack it starts the prebuilt jar.
  cat > "$stage/bench/run.sh" <<'SH'
#!/usr/bin/env bash
# bench/run.sh of a packed GPU suite (bench/gpu/run.sh pack): JMH from the prebuilt benchmarks.jar, with the packed
# JDK and the packed rlhf4j build (classes, natives and dependencies from target/) instead of a Maven build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ -f "$root/bench/target/benchmarks.jar" ] || { echo "bench: this pack has no benchmarks.jar" >&2; exit 1; }
cp="$root/target/classes:$(printf '%s:' "$root"/target/lib/*.jar)$root/bench/target/benchmarks.jar"
export RLHF4J_NATIVE_DIR="$root/target/classes/native/linux-x86_64"
exec "$root/jdk/bin/java" --enable-native-access=ALL-UNNAMED -cp "$cp" \
  org.openjdk.jmh.Main "$@"
SH
  chmod +x "$stage/bench/run.sh" "$stage"/bench/gpu/*.sh
  rm -rf "$TRIM_DIR"

  {
    echo "rlhf4j GPU pack, made $(date -u '+%F %T') UTC on $(hostname)"
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "jdk: $("$stage/jdk/bin/java" -version 2>&1 | head -1); modules: $modules"
    echo "native: $(cd "$stage/target/classes/native/linux-x86_64" && ls | tr '\n' ' ')"
    echo "jars (from $(cat "$DEPS_FROM")): $(ls "$stage/target/lib" | tr '\n' ' ')"
    echo "left out:${dropped:- nothing}"
    echo "console launcher: junit-platform-console-standalone $(junit_platform_version "$root")"
    echo "$bench_note"
  } > "$stage/PACKED.txt"
  rm -f "$DEPS_FROM"

  note "compressing"
  rm -f "$out/rlhf4j-gpu.tar.gz" "$out/run.sh" "$out/PACKED.txt"
  tar -C "$stage" -cf - . | gzip -"${PACK_GZIP:-6}" > "$out/rlhf4j-gpu.tar.gz"
  cp "${BASH_SOURCE[0]}" "$out/run.sh"
  chmod +x "$out/run.sh"
  local size
  size=$(du -sb "$out" | cut -f1)
  echo "size: $(mib "$size") (unpacked: jdk $(mib "$(du -sb "$stage/jdk" | cut -f1)"), jars $(mib "$(du -sb "$stage/target/lib" | cut -f1)")); packed in $((SECONDS - t0)) s" >> "$stage/PACKED.txt"
  cp "$stage/PACKED.txt" "$out/PACKED.txt"
  size=$(du -sb "$out" | cut -f1)
  if [ "$size" -ge "$LIMIT_BYTES" ]; then
    die "the pack is $(mib "$size"), over the 64 MiB a device call carries (see $out/PACKED.txt)"
  fi
  # A device call carries the working tree (tracked and untracked-not-ignored files) besides the carried pack.
  local tree
  tree=$(cd "$root" && git ls-files -z --cached --others --exclude-standard 2>/dev/null | xargs -0 -r du -cb 2>/dev/null |
    tail -1 | cut -f1)
  if [ -n "$tree" ] && [ "$((tree + size))" -ge "$LIMIT_BYTES" ]; then
    note "WARNING: with the working tree ($(mib "$tree")) a device call would carry $(mib "$((tree + size))"), over 64 MiB"
  fi
  echo "packed $out: $(mib "$size") ($(du -b "$out/rlhf4j-gpu.tar.gz" | cut -f1) bytes compressed); $(tail -1 "$out/PACKED.txt")"
  echo "on the GPU machine: $out/run.sh run    (reports in \$OUT, else $out/out)"
}

# ---- on the GPU machine --------------------------------------------------------------------------------------------

# Unpacks rlhf4j-gpu.tar.gz beside this script into the work folder (once per tarball) and prints the folder.
unpacked() {
  local here tarball work stamp
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  tarball="$here/rlhf4j-gpu.tar.gz"
  [ -f "$tarball" ] || die "no rlhf4j-gpu.tar.gz beside $here/run.sh: run this from a folder made by 'bench/gpu/run.sh pack'"
  work=${RLHF4J_GPU_WORK:-${TMPDIR:-/tmp}/rlhf4j-gpu}
  stamp="$(stat -c '%s %Y' "$tarball")"
  if [ ! -f "$work/.unpacked" ] || [ "$(cat "$work/.unpacked")" != "$stamp" ]; then
    rm -rf "$work"
    mkdir -p "$work"
    gzip -dc "$tarball" | tar -C "$work" -xf - || die "could not unpack $tarball into $work"
    echo "$stamp" > "$work/.unpacked"
  fi
  echo "$work"
}

# The folder holding libcublasLt.so.13 (or .12) when the dynamic loader would not find it by itself: the CUDA
# toolkit's, or the NVIDIA wheels' in a Python environment (where PyTorch's CUDA 13 libraries live).
find_cublaslt() {
  if ldconfig -p 2>/dev/null | grep -q 'libcublasLt\.so\.1[23] '; then return 0; fi
  local d sp dirs=(/usr/local/cuda/lib64 /usr/local/cuda-*/lib64 /usr/local/cuda-*/targets/x86_64-linux/lib)
  for sp in $(python3 -c 'import site; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' \
    2>/dev/null) /opt/*/.venv/lib/python3*/site-packages /usr/lib/python3/dist-packages; do
    dirs+=("$sp/nvidia/cu13/lib" "$sp/nvidia/cublas/lib")
  done
  for d in "${dirs[@]}"; do
    if [ -f "$d/libcublasLt.so.13" ] || [ -f "$d/libcublasLt.so.12" ]; then echo "$d"; return 0; fi
  done
  return 0
}

run_console() { # $1 = log file, $2 = reports dir or "", rest = selection arguments
  local log=$1 reports=$2 work=$WORK cp
  shift 2
  cp="$work/target/test-classes:$work/target/classes:$(printf '%s:' "$work"/target/lib/*.jar)"
  local args=(execute --class-path "${cp%:}" --details=tree --disable-banner --disable-ansi-colors
    --exclude-engine=junit-vintage --exclude-engine=junit-platform-suite)
  [ -n "$reports" ] && args+=(--reports-dir "$reports")
  set +e
  "$work/jdk/bin/java" --enable-native-access=ALL-UNNAMED -Xss8m \
    -Drlhf4j.shared="${RLHF4J_SHARED:-$work/shared}" -jar "$work/junit-platform-console-standalone.jar" \
    "${args[@]}" "$@" > "$log" 2>&1
  local rc=$?
  set -e
  return $rc
}

# "12 tests successful, 0 failed, 0 skipped, 0 aborted, 1 containers aborted" from a console launcher log.
counts() {
  awk '/tests (successful|failed|skipped|aborted)|containers aborted/ {
         gsub(/[][]/, ""); n = $1; $1 = ""; sub(/^ +/, ""); sub(/ +$/, ""); out = out (out ? ", " : "") n " " $0 }
       END { print out }' "$1"
}

run() {
  local bench=1 tests=1 sel=() only=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --no-bench) bench=0 ;;
      --no-tests) tests=0 ;;
      --bench)
        [ $# -ge 2 ] || die "--bench needs a name (bench/gpu/NAME.sh)"
        only+=("$2")
        shift ;;
      --select-class|--include-tag|--select-package)
        [ $# -ge 2 ] || die "$1 needs a value"
        sel+=("$1" "$2")
        shift ;;
      *) die "run: unknown option $1 (see the comment at the top of run.sh)" ;;
    esac
    shift
  done
  WORK=$(unpacked)
  local here out
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  out=${OUT:-$here/out}
  mkdir -p "$out"
  local java="$WORK/jdk/bin/java"
  "$java" -version > /dev/null 2>&1 || die "the packed java does not start: $("$java" -version 2>&1 | head -3)"
  export JAVA_HOME="$WORK/jdk" PATH="$WORK/jdk/bin:$PATH"
  if [ -z "${RLHF4J_CUBLASLT:-}" ]; then
    local lt
    lt=$(find_cublaslt)
    [ -n "$lt" ] && export RLHF4J_CUBLASLT="$lt"
  fi
  {
    echo "date: $(date -u '+%F %T') UTC; host $(hostname)"
    cat "$WORK/PACKED.txt"
    echo "java: $("$java" -version 2>&1 | head -1)"
    echo "RLHF4J_CUBLASLT: ${RLHF4J_CUBLASLT:-(not set: the dynamic loader searches)}"
    if command -v nvidia-smi >/dev/null; then
      nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1
    else
      echo "nvidia-smi: not found"
    fi
  } > "$out/env.txt"

  local summary=() status=0 rc
  if [ "$tests" = 1 ]; then
    if [ ${#sel[@]} -eq 0 ]; then sel=(--scan-class-path="$WORK/target/test-classes" --include-tag gpu); fi
    rc=0
    run_console "$out/tests.log" "$out/junit" "${sel[@]}" || rc=$?
    summary+=("tests (${sel[*]}): exit $rc; $(counts "$out/tests.log")")
    [ $rc -eq 0 ] || status=1
    # Our own GEMM kernels on the device too: the same class with cuBLASLt switched off.
    if [ -f "$WORK/target/test-classes/io/github/rlhf4j/kernels/GemmKernelOnGpuTest.class" ] &&
      [[ " ${sel[*]} " == *" --include-tag gpu "* ]]; then
      rc=0
      RLHF4J_CUBLASLT=off run_console "$out/tests-own-gemm.log" "" \
        --select-class io.github.rlhf4j.kernels.GemmKernelOnGpuTest || rc=$?
      summary+=("GemmKernelOnGpuTest with RLHF4J_CUBLASLT=off: exit $rc; $(counts "$out/tests-own-gemm.log")")
      [ $rc -eq 0 ] || status=1
    fi
  fi
  if [ "$bench" = 1 ]; then
    : > "$out/bench.log"
    local b
    for b in "$WORK"/bench/gpu/*.sh; do
      [ "$(basename "$b")" = run.sh ] && continue
      if [ ${#only[@]} -gt 0 ] && [[ " ${only[*]} " != *" $(basename "$b" .sh) "* ]]; then continue; fi
      echo "==== $(basename "$b") ($(date -u '+%T'))" >> "$out/bench.log"
      rc=0
      bash "$b" >> "$out/bench.log" 2>&1 || rc=$?
      summary+=("benchmark $(basename "$b"): exit $rc")
      [ $rc -eq 0 ] || status=1
    done
  fi
  printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
  echo "reports in $out" >&2
  return $status
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  pack) pack "$@" ;;
  run) run "$@" ;;
  java) WORK=$(unpacked); exec "$WORK/jdk/bin/java" "$@" ;;
  *) sed -n '2,20p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
