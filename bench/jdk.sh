# Sourced by the bench scripts: jdk25_java prints the java of a JDK 25 or newer (under /usr/lib/jvm, or JAVA_HOME),
# or says there is none and exits.
jdk25_java() {
  local java
  java=$(ls /usr/lib/jvm/*/bin/java ${JAVA_HOME:+$JAVA_HOME/bin/java} 2>/dev/null | while read -r j; do
    v=$("$j" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}'); [ "${v%%[.+-]*}" -ge 25 ] 2>/dev/null && echo "$j"
  done | head -1)
  [ -n "$java" ] || { echo "$(basename "$0"): needs a JDK 25" >&2; exit 1; }
  echo "$java"
}
