#!/usr/bin/env bash
# Runs the binding tests: the Kotlin wrapper's tests on the JVM and the Swift package's tests in a
# Debian trixie chroot, both against a host (Linux x86_64) debug build of alliance-ffi.
#
#   scripts/test-bindings.sh [kotlin|swift|all]     (default: all)
#
# Each runner ends with a countable line (`N passed, N failed` from the Kotlin harness, XCTest's
# `Executed N tests, with N failures`); the script exits non-zero when any runner failed.
#
# Build outputs only, all under target/ (never committed):
#   target/debug/liballiance_ffi.so       the host library both runners load
#   target/bindings/{kotlin,swift}/       uniffi-generated sources
#   target/bindings/kotlin-classes/       compiled Kotlin (generated + wrapper + tests)
#   target/bindings/swift-build/          SwiftPM scratch folder
#   target/bindings/relay.{url,log}       the loopback relay's URL and log
# plus ios/Sources/AllianceBindings/alliance_ffi.swift, a copy of the generated Swift that SwiftPM
# compiles there (gitignored by ios/.gitignore).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

WHICH=${1:-all}
case "$WHICH" in kotlin|swift|all) ;; *) echo "usage: $0 [kotlin|swift|all]" >&2; exit 2 ;; esac

FFI_CRATE=alliance-ffi
# The tests' hooks (e.g. an own change peers refuse, bindings/src/test_hooks.rs) are exported only
# with this feature, and `bindgen` builds the uniffi-bindgen binary. Every cargo call below passes
# both: one built without them would overwrite the library (and its generated bindings) with one
# built from another feature set.
FFI_FEATURES=(--features test-hooks,bindgen)
FFI_LIB=alliance_ffi                      # [lib] name: liballiance_ffi.so, Swift module alliance_ffiFFI
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LIB_DIR=$TARGET_DIR/debug
OUT=$TARGET_DIR/bindings
KOTLIN_TEST_MAIN=org.alliance.AllianceTestsKt
CHROOT_REPO=/alliance                     # where the repository is mounted inside the Swift chroot

step() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------------------------------------
# 1. Host library and generated bindings.                              NEEDS bindings/ (issue 5)
# ---------------------------------------------------------------------------------------------
if [ ! -f bindings/Cargo.toml ]; then
    echo "test-bindings: bindings/ (crate $FFI_CRATE) does not exist yet; nothing to test" >&2
    exit 1
fi

step "cargo build -p $FFI_CRATE ${FFI_FEATURES[*]}"
cargo build -p "$FFI_CRATE" "${FFI_FEATURES[@]}"
LIB=$LIB_DIR/lib$FFI_LIB.so
[ -f "$LIB" ] || { echo "test-bindings: $LIB missing: is crate-type cdylib set?" >&2; exit 1; }

generate() { # language
    rm -rf "${OUT:?}/$1"
    cargo run -q -p "$FFI_CRATE" "${FFI_FEATURES[@]}" --bin uniffi-bindgen -- \
        generate --library "$LIB" --language "$1" --no-format --out-dir "$OUT/$1"
}

# A loopback relay (bindings/examples/loopback_relay.rs) for the tests that sync two stores over
# the network; its ws:// URL reaches the runners as ALLIANCE_TEST_RELAY. Stopped on exit.
step "loopback relay"
cargo build -q -p "$FFI_CRATE" "${FFI_FEATURES[@]}" --example loopback_relay
mkdir -p "$OUT"
"$LIB_DIR/examples/loopback_relay" >"$OUT/relay.url" 2>"$OUT/relay.log" &
RELAY_PID=$!
trap 'kill "$RELAY_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    [ -s "$OUT/relay.url" ] && break
    kill -0 "$RELAY_PID" 2>/dev/null || break
    sleep 0.1
done
RELAY_URL=$(head -n 1 "$OUT/relay.url" 2>/dev/null || true)
case "$RELAY_URL" in
    ws://*) echo "relay at $RELAY_URL" ;;
    *) echo "test-bindings: the loopback relay did not start (see $OUT/relay.log)" >&2; exit 1 ;;
esac

status=0
failed_runners=()

# ---------------------------------------------------------------------------------------------
# 2. Kotlin on the JVM: generated Kotlin + android/alliance/src/main/kotlin (the wrapper, pure
#    Kotlin: no android.* imports) + android/alliance/src/jvmTest/kotlin (tests and harness).
# ---------------------------------------------------------------------------------------------
run_kotlin() {
    step "Kotlin: toolchain"
    local kotlinc classpath classes
    kotlinc=$(scripts/setup-kotlin.sh)
    classpath=$(scripts/setup-kotlin.sh --classpath)

    step "Kotlin: generate bindings"
    generate kotlin

    step "Kotlin: compile"
    classes=$OUT/kotlin-classes
    rm -rf "$classes"
    local sources=()
    mapfile -t sources < <(find "$OUT/kotlin" android/alliance/src/main/kotlin \
        android/alliance/src/jvmTest/kotlin -name '*.kt' | sort)
    "$kotlinc" -jvm-target 17 -cp "$classpath" -d "$classes" "${sources[@]}" || return 1

    step "Kotlin: run tests"
    ALLIANCE_TEST_RELAY="$RELAY_URL" \
        java -Djna.library.path="$LIB_DIR" -cp "$classes:$classpath" "$KOTLIN_TEST_MAIN"
}

# ---------------------------------------------------------------------------------------------
# 3. Swift on Linux: ios/ as a Swift package with ALLIANCE_LOCAL_FFI=1 (a systemLibrary target
#    over target/bindings/swift/alliance_ffiFFI.h, linked against target/debug), in the chroot.
# ---------------------------------------------------------------------------------------------
run_swift() {
    step "Swift: toolchain (builds the chroot when missing)"
    scripts/setup-swift.sh >/dev/null

    step "Swift: generate bindings"
    generate swift
    local dest=ios/Sources/AllianceBindings
    find "$dest" -maxdepth 1 -name '*.swift' -delete
    cp "$OUT"/swift/*.swift "$dest/"

    step "Swift: swift test"
    # ios/LocalFFI/module.modulemap reaches the header as ../../target/...: mount a target folder
    # that lives elsewhere (CARGO_TARGET_DIR) where that path expects it.
    local binds=(--bind "$ROOT:$CHROOT_REPO")
    if [ "$(realpath "$TARGET_DIR")" != "$ROOT/target" ]; then
        binds+=(--bind "$TARGET_DIR:$CHROOT_REPO/target")
    fi
    scripts/setup-swift.sh run "${binds[@]}" \
        --env ALLIANCE_LOCAL_FFI=1 \
        --env ALLIANCE_TEST_HOOKS=1 \
        --env ALLIANCE_TEST_RELAY="$RELAY_URL" \
        --env LD_LIBRARY_PATH="$CHROOT_REPO/target/debug" \
        -- swift test --disable-swift-testing \
            --package-path "$CHROOT_REPO/ios" \
            --scratch-path "$CHROOT_REPO/target/bindings/swift-build" \
            -Xlinker -L"$CHROOT_REPO/target/debug"
}

if [ "$WHICH" != swift ]; then
    run_kotlin || { status=1; failed_runners+=(kotlin); }
fi
if [ "$WHICH" != kotlin ]; then
    run_swift || { status=1; failed_runners+=(swift); }
fi

if [ "$status" -ne 0 ]; then
    echo "test-bindings: FAILED: ${failed_runners[*]}" >&2
else
    echo "test-bindings: all binding tests passed"
fi
exit "$status"
