#!/usr/bin/env bash
# Alliance on the CPUs phones have: cross-builds for 64-bit ARM (aarch64, Android's arm64-v8a)
# and 32-bit ARM (armv7 hard-float, Android's armeabi-v7a) with Debian's cross compilers and runs,
# under qemu-user,
#   - alliance-core's unit tests,
#   - alliance-ffi's Rust tests (its unit tests and bindings/tests/),
#   - tests/tests/two_devices.rs (two stores on disk, one encrypted: sync in process and through
#     a TLS relay, a change the rules refuse, exports),
# all in one cargo call per target, so SQLCipher with its vendored OpenSSL, ring and Automerge are
# each cross-built once per target. The aarch64 build is linked with the 16 KB page-size flag that
# .cargo/config.toml gives the Android targets (scripts/arm-env.sh), and `readelf -lW` must show
# every LOAD segment of liballiance_ffi.so and of each test program that ran aligned to 0x4000.
#
#   scripts/test-arm.sh [aarch64|armv7|all]      (default: all)
#
# Installs what it needs when missing (Debian's gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf,
# qemu-user and binutils; the two rustup targets). Prints one countable line per target
# (`aarch64: N passed, N failed`; the readelf checks count as tests) and exits non-zero when a
# build fails, an assertion fails or a test program dies under qemu. Build outputs go to
# $CARGO_TARGET_DIR/<triple>/debug (default target/), reused by the next run; build scripts and
# proc macros are shared with the host build. The targets are built one after the other: a vendored
# OpenSSL build is heavy.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/arm-env.sh
. scripts/arm-env.sh

WHICH=${1:-all}
case "$WHICH" in aarch64) TARGETS=(aarch64) ;; armv7) TARGETS=(armv7) ;; all) TARGETS=(aarch64 armv7) ;;
    *) echo "usage: $0 [aarch64|armv7|all]" >&2; exit 2 ;; esac

step() { printf '\n== %s\n' "$*"; }

arm_install "${TARGETS[@]}"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOGS=$TARGET_DIR/arm-logs
mkdir -p "$LOGS"

load_alignments() { # ELF file: the alignments of its LOAD segments, on one line
    readelf -lW "$1" | awk '$1 == "LOAD" { print $NF }' | sort -u | tr '\n' ' '
}

status=0
summary=()
for target in "${TARGETS[@]}"; do
    triple=$(arm_triple "$target")
    arm_env "$target"
    log=$LOGS/$target.log
    step "$target: cargo test --target $triple (under $(arm_qemu "$target"))"
    started=$SECONDS
    set +e
    # Two test threads (the cores' count): under qemu a test runs tens of times slower than on the
    # CPU it emulates, and the relay and thread tests wait on each other.
    RUST_TEST_THREADS=2 cargo test --target "$triple" --no-fail-fast \
        -p alliance-core -p alliance-ffi -p alliance-tests \
        --lib --test clinical --test concurrency --test errors --test network_sync \
        --test two_devices 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    counts() { # field (1 passed, 2 failed): the sum over every test program's summary line
        sed -n "s/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\\$1/p" "$log" \
            | awk '{ s += $1 } END { print s + 0 }'
    }
    passed=$(counts 1)
    failed=$(counts 2)
    if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
        # A build error, or a test program that died (a signal under qemu) before its summary.
        echo "test-arm: $target: cargo test exited $rc with no failed assertion counted: see $log" >&2
        failed=1
    fi
    if [ "$target" = aarch64 ]; then
        # The library as apps load it (cargo test builds only the rlib). With the feature the
        # tests above unified onto alliance-core, nothing but alliance-ffi is compiled again.
        cargo build --target "$triple" -p alliance-ffi --lib --features alliance-core/test-support \
            2>&1 | tee -a "$log" || failed=$((failed + 1))
    fi
    echo "$target: cargo test took $((SECONDS - started)) s"

    if [ "$target" = aarch64 ]; then
        step "$target: LOAD segments aligned to $ARM_PAGE_SIZE ($ARM_PAGE_FLAG)"
        # The kind of file that ships (the cdylib) and every test program that ran above.
        elves=("$TARGET_DIR/$triple/debug/liballiance_ffi.so")
        while read -r ran; do elves+=("$ran"); done < <(
            sed -n 's/^ *Running .* (\(.*\))$/\1/p' "$log")
        for elf in "${elves[@]}"; do
            aligns=
            [ ! -f "$elf" ] || aligns=$(load_alignments "$elf")
            echo "${elf#"$TARGET_DIR"/}: LOAD alignment ${aligns:-none (not built)}"
            if [ "$aligns" = "$ARM_PAGE_SIZE " ]; then
                passed=$((passed + 1))
            else
                echo "test-arm: LOAD segments of $elf are not all aligned to $ARM_PAGE_SIZE" >&2
                failed=$((failed + 1))
            fi
        done
    fi
    if [ "$target" = aarch64 ]; then
        step "$target: uniffi reads the interface from the library as the mobile profile strips it"
        # Android's Gradle build generates its Kotlin from the arm64 library built with the
        # mobile profile; uniffi finds the interface in the library's symbol table, so a profile
        # that strips symbols (not only debug info) leaves nothing to generate from.
        mobile_strip=$(awk '/^\[profile\.mobile\]/ { p = 1; next } /^\[/ { p = 0 }
            p && $1 == "strip" { gsub(/"/, "", $3); print $3 }' Cargo.toml)
        case "$mobile_strip" in
            symbols | true) strip_flag=--strip-all ;;
            debuginfo) strip_flag=--strip-debug ;;
            *) strip_flag= ;;
        esac
        shipped=$TARGET_DIR/arm-logs/liballiance_ffi.mobile-strip.so
        cp "$TARGET_DIR/$triple/debug/liballiance_ffi.so" "$shipped"
        [ -z "$strip_flag" ] || "$(arm_gnu "$target")-strip" "$strip_flag" "$shipped"
        rm -rf "$TARGET_DIR/arm-logs/uniffi-kotlin"
        if cargo run -q -p alliance-ffi --features test-hooks,bindgen --bin uniffi-bindgen -- \
            generate --library "$shipped" --language kotlin --no-format \
            --out-dir "$TARGET_DIR/arm-logs/uniffi-kotlin" >>"$log" 2>&1 \
            && [ -s "$TARGET_DIR/arm-logs/uniffi-kotlin/org/alliance/ffi/alliance_ffi.kt" ]; then
            echo "Kotlin generated from the library stripped as strip = \"$mobile_strip\" leaves it"
            passed=$((passed + 1))
        else
            echo "test-arm: no Kotlin from a library stripped as strip = \"$mobile_strip\" (see $log)" >&2
            failed=$((failed + 1))
        fi
    fi
    [ "$failed" = 0 ] || status=1
    summary+=("$target: $passed passed, $failed failed")
done

step "ARM results"
printf '%s\n' "${summary[@]}"
exit "$status"
