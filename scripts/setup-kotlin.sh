#!/usr/bin/env bash
# Kotlin on the JVM for the Alliance binding tests: a JDK, JNA and kotlinc, installed once.
#
#   scripts/setup-kotlin.sh            installs what is missing, then prints the path of kotlinc
#   scripts/setup-kotlin.sh --classpath   same, then prints the runtime classpath instead
#                                      (kotlin-stdlib, kotlinx-coroutines, JNA), ':'-separated
#
# Environment:
#   ALLIANCE_KOTLIN_CACHE   where kotlinc is installed (default /var/cache/alliance/kotlin);
#                           keep it outside the repository.
#
# Sources: the JDK and JNA from Debian (apt), kotlinc from the npm package `kotlin-compiler`,
# which is the full JVM compiler and ships kotlin-stdlib.jar and kotlinx-coroutines-core-jvm.jar.
# Maven Central is not used, so no Gradle build is involved.
set -euo pipefail

KOTLIN_VERSION=2.4.20
CACHE=${ALLIANCE_KOTLIN_CACHE:-/var/cache/alliance/kotlin}
CACHE=${CACHE%/}
KOTLIN_HOME="$CACHE/$KOTLIN_VERSION/node_modules/kotlin-compiler"
JNA_JAR=/usr/share/java/jna.jar

log() { echo "setup-kotlin: $*" >&2; }
die() { log "error: $*"; exit 1; }

apt_updated=false
apt_install() {
    [ "$(id -u)" = 0 ] || die "need root to install $* with apt-get"
    if ! $apt_updated; then
        apt-get update -q >/dev/null
        apt_updated=true
    fi
    log "installing $* (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# 1. A JDK (javac means a full JDK, not only a runtime).
command -v javac >/dev/null || apt_install default-jdk-headless

# 2. JNA: the Java classes and the native dispatch library it loads.
missing=()
dpkg -s libjna-java >/dev/null 2>&1 || missing+=(libjna-java)
dpkg -s libjna-jni >/dev/null 2>&1 || missing+=(libjna-jni)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
[ -r "$JNA_JAR" ] || die "$JNA_JAR missing after installing libjna-java"

# 3. kotlinc, pinned, from npm into the cache.
installed_version() { cat "$KOTLIN_HOME/build.txt" 2>/dev/null || true; }
if [ ! -x "$KOTLIN_HOME/bin/kotlinc" ] || [ "$(installed_version)" != "$KOTLIN_VERSION" ]; then
    command -v npm >/dev/null || die "npm is needed to install kotlin-compiler"
    log "installing kotlin-compiler@$KOTLIN_VERSION (npm) into $CACHE/$KOTLIN_VERSION"
    rm -rf "$CACHE/$KOTLIN_VERSION.partial"
    mkdir -p "$CACHE/$KOTLIN_VERSION.partial"
    npm install --prefix "$CACHE/$KOTLIN_VERSION.partial" --no-save --no-package-lock \
        --no-audit --no-fund --loglevel=error "kotlin-compiler@$KOTLIN_VERSION" >&2
    rm -rf "${CACHE:?}/$KOTLIN_VERSION"
    mv "$CACHE/$KOTLIN_VERSION.partial" "$CACHE/$KOTLIN_VERSION"
fi
for f in bin/kotlinc lib/kotlin-stdlib.jar lib/kotlinx-coroutines-core-jvm.jar; do
    [ -e "$KOTLIN_HOME/$f" ] || die "$KOTLIN_HOME/$f missing: remove $CACHE/$KOTLIN_VERSION and retry"
done

case "${1:-}" in
    --classpath)
        echo "$KOTLIN_HOME/lib/kotlin-stdlib.jar:$KOTLIN_HOME/lib/kotlinx-coroutines-core-jvm.jar:$JNA_JAR"
        ;;
    "")
        echo "$KOTLIN_HOME/bin/kotlinc"
        ;;
    *)
        die "unknown option $1 (use --classpath or nothing)"
        ;;
esac
