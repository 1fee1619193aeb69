# Sourced by scripts/test-arm.sh and scripts/bench: cross-building for Linux on ARM with Debian's
# cross compilers, running under qemu-user.
#
#   arm_install aarch64 armv7    installs what is missing (apt packages, rustup targets)
#   arm_env aarch64              exports the linker, runner, C compiler and flags of one target
#   arm_triple armv7             armv7-unknown-linux-gnueabihf
#
# The aarch64 build is linked with the page-size flag that .cargo/config.toml gives the Android
# targets (ARM_PAGE_FLAG, ARM_PAGE_SIZE), so what is checked on Linux is what Android gets.

arm_triple() { case "$1" in aarch64) echo aarch64-unknown-linux-gnu ;; armv7) echo armv7-unknown-linux-gnueabihf ;;
    *) echo "arm-env: unknown target $1 (aarch64 or armv7)" >&2; return 1 ;; esac; }
arm_gnu() { case "$1" in aarch64) echo aarch64-linux-gnu ;; armv7) echo arm-linux-gnueabihf ;; esac; }
arm_qemu() { case "$1" in aarch64) echo qemu-aarch64 ;; armv7) echo qemu-arm ;; esac; }

# Debian packages gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf, qemu-user and binutils (readelf):
# about 110 MB on a fresh machine, under a minute with apt-get update.
arm_install() { # target…
    local target missing=() installed
    for target in "$@"; do
        command -v "$(arm_gnu "$target")-gcc" >/dev/null || missing+=("gcc-$(arm_gnu "$target")")
        command -v "$(arm_qemu "$target")" >/dev/null || missing+=(qemu-user)
    done
    command -v readelf >/dev/null || missing+=(binutils)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "arm-env: apt-get install ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
    fi
    installed=$(rustup target list --installed)
    for target in "$@"; do
        grep -qx "$(arm_triple "$target")" <<<"$installed" || rustup target add "$(arm_triple "$target")"
    done
}

# The Android targets' page-size flag, read from .cargo/config.toml (run from the repository root).
ARM_PAGE_FLAG=$(grep -o 'link-arg=-Wl,-z,max-page-size=[0-9]*' .cargo/config.toml 2>/dev/null | sort -u || true)
if [ -z "$ARM_PAGE_FLAG" ] || [ "$(wc -l <<<"$ARM_PAGE_FLAG")" != 1 ]; then
    echo "arm-env: .cargo/config.toml must give the Android targets one max-page-size flag" >&2
    return 1
fi
ARM_PAGE_SIZE=$(printf '0x%x' "${ARM_PAGE_FLAG##*=}")

arm_env() { # target
    local triple gnu upper lower
    triple=$(arm_triple "$1")
    gnu=$(arm_gnu "$1")
    upper=$(tr 'a-z-' 'A-Z_' <<<"$triple")
    lower=${triple//-/_}
    # Linker and test runner for cargo; the C compiler for cc-rs (SQLCipher, ring) and openssl-src.
    export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
    export "CARGO_TARGET_${upper}_RUNNER=$(arm_qemu "$1") -L /usr/$gnu"
    export "CC_${lower}=$gnu-gcc" "AR_${lower}=$gnu-ar"
    if [ "$1" = aarch64 ]; then
        export "CARGO_TARGET_${upper}_RUSTFLAGS=-C $ARM_PAGE_FLAG"
    fi
}
