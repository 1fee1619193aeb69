#!/usr/bin/env bash
# Alliance on the CPUs phones have: cross-builds for 64-bit ARM (aarch64, Android's arm64-v8a)
# and 32-bit ARM (armv7 hard-float, Android's armeabi-v7a) with Debian's cross compilers and runs,
# under qemu-user,
#   - alliance-core's unit tests,
#   - alliance-ffi's Rust tests (its unit tests and bindings/tests/),
#   - tests/tests/two_devices.rs (two stores on disk, one encrypted: sync in process and through
#     a TLS relay, a change the rules refuse, exports),
# all in one cargo call per target, so SQLCipher with its vendored OpenSSL, ring and Automerge are
# each cross-built once. The aarch64 build is linked with the 16 KB page-size flag that
# .cargo/config.toml gives the Android targets, and readelf must show every LOAD segment of
# liballiance_ffi.so (and of the test programs that ran) aligned to 0x4000.
#
#   scripts/test-arm.sh [aarch64|armv7|all]      (default: all)
#
# Installs what it needs when missing (Debian packages gcc-aarch64-linux-gnu,
# gcc-arm-linux-gnueabihf, qemu-user, binutils; the two rustup targets). Prints one countable
# line per target (`aarch64: N passed, N failed`) and exits non-zero when a build fails, a test
# fails or a test program dies under qemu. Build outputs go to $CARGO_TARGET_DIR/<triple>/
# (default target/<triple>/), reused by the next run; build scripts and proc macros are shared
# with the host build. Targets are built one after the other: a vendored OpenSSL build is heavy.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

WHICH=${1:-all}
case "$WHICH" in aarch64) TARGETS=(aarch64) ;; armv7) TARGETS=(armv7) ;; all) TARGETS=(aarch64 armv7) ;;
    *) echo "usage: $0 [aarch64|armv7|all]" >&2; exit 2 ;; esac

step() { printf '\n== %s\n' "$*"; }

triple_of() { case "$1" in aarch64) echo aarch64-unknown-linux-gnu ;; armv7) echo armv7-unknown-linux-gnueabihf ;; esac; }
gnu_of() { case "$1" in aarch64) echo aarch64-linux-gnu ;; armv7) echo arm-linux-gnueabihf ;; esac; }
qemu_of() { case "$1" in aarch64) echo qemu-aarch64 ;; armv7) echo qemu-arm ;; esac; }

# ---------------------------------------------------------------------------------------------
# Tools. On a fresh Debian machine: about 110 MB of packages, under a minute with apt-get update.
# ---------------------------------------------------------------------------------------------
missing=()
for target in "${TARGETS[@]}"; do
    gnu=$(gnu_of "$target")
    command -v "$gnu-gcc" >/dev/null || missing+=("gcc-$gnu")
    command -v "$(qemu_of "$target")" >/dev/null || missing+=(qemu-user)
done
command -v readelf >/dev/null || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
triples=()
for target in "${TARGETS[@]}"; do triples+=("$(triple_of "$target")"); done
installed=$(rustup target list --installed)
for triple in "${triples[@]}"; do
    grep -qx "$triple" <<<"$installed" || rustup target add "$triple"
done

# The Android targets' page-size flag, read from .cargo/config.toml so that what is checked here
# is what an Android build gets.
PAGE_FLAG=$(grep -o 'link-arg=-Wl,-z,max-page-size=[0-9]*' .cargo/config.toml | sort -u || true)
if [ "$(wc -l <<<"$PAGE_FLAG")" != 1 ] || [ -z "$PAGE_FLAG" ]; then
    echo "test-arm: .cargo/config.toml must give the Android targets one max-page-size flag" >&2
    exit 1
fi
PAGE_SIZE=$(printf '0x%x' "${PAGE_FLAG##*=}")

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOGS=$TARGET_DIR/arm-logs
mkdir -p "$LOGS"

load_alignments() { # ELF file: prints the alignment of each LOAD segment
    readelf -lW "$1" | awk '$1 == "LOAD" { print $NF }'
}

status=0
summary=()
for target in "${TARGETS[@]}"; do
    triple=$(triple_of "$target")
    gnu=$(gnu_of "$target")
    upper=$(tr 'a-z-' 'A-Z_' <<<"$triple")
    lower=${triple//-/_}
    # Linker, test runner and the C compiler for cc-rs, openssl-src and ring.
    export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
    export "CARGO_TARGET_${upper}_RUNNER=$(qemu_of "$target") -L /usr/$gnu"
    export "CC_${lower}=$gnu-gcc" "AR_${lower}=$gnu-ar"
    if [ "$target" = aarch64 ]; then
        export "CARGO_TARGET_${upper}_RUSTFLAGS=-C $PAGE_FLAG"
    fi
    log=$LOGS/$target.log
    step "$target: cargo test --target $triple (under $(qemu_of "$target"))"
    started=$SECONDS
    set +e
    # qemu runs a test tens of times slower than the CPU it emulates: two test threads, the
    # cores' count, keep the timing-sensitive tests (relay, threads) from starving.
    RUST_TEST_THREADS=2 cargo test --target "$triple" --no-fail-fast \
        -p alliance-core -p alliance-ffi -p alliance-tests \
        --lib --test clinical --test concurrency --test errors --test network_sync \
        --test two_devices 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    passed=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
    failed=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$log" | awk '{s += $1} END {print s + 0}')
    if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
        # A build error, or a test program that died (a signal under qemu) before its summary.
        echo "test-arm: $target: cargo test exited $rc without a failed assertion: see $log" >&2
        failed=1
    fi
    [ "$failed" = 0 ] || status=1
    echo "$target: cargo test took $((SECONDS - started)) s"

    if [ "$target" = aarch64 ]; then
        step "$target: LOAD segments aligned to $PAGE_SIZE ($PAGE_FLAG)"
        # The shipped kind of file (the cdylib) and every test program that ran above.
        elves=("$TARGET_DIR/$triple/debug/liballiance_ffi.so")
        while read -r ran; do elves+=("$ran"); done < <(
            sed -n 's/^ *Running .* (\(.*\))$/\1/p' "$log")
        for elf in "${elves[@]}"; do
            aligns=
            [ ! -f "$elf" ] || aligns=$(load_alignments "$elf" | sort -u | tr '\n' ' ')
            echo "${elf#"$TARGET_DIR"/}: LOAD alignment ${aligns:-none (not built)}"
            if [ "$aligns" = "$PAGE_SIZE " ]; then
                passed=$((passed + 1))
            else
                echo "test-arm: LOAD segments of $elf are not all aligned to $PAGE_SIZE" >&2
                failed=$((failed + 1))
                status=1
            fi
        done
    fi
    summary+=("$target: $passed passed, $failed failed")
done

step "ARM results"
printf '%s\n' "${summary[@]}"
exit "$status"
