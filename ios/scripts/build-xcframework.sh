#!/usr/bin/env bash
# Builds ios/AllianceFFI.xcframework (static alliance-ffi for iOS devices and simulators, with the
# uniffi C header and module map) and puts the generated Swift in ios/Sources/AllianceBindings/.
# Both are build outputs, gitignored. Runs on macOS with Xcode and rustup.
#
#   ios/scripts/build-xcframework.sh            the `mobile` profile (workspace Cargo.toml: LTO,
#                                               one codegen unit, debug info stripped;
#                                               BENCHMARKS.md "Size")
#   ios/scripts/build-xcframework.sh --debug    unoptimized, for faster local builds
set -euo pipefail

IOS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$IOS_DIR/.." && pwd)
cd "$ROOT"

CARGO_PROFILE=mobile
PROFILE=mobile                  # the folder under target/<triple>/ cargo writes to
if [ "${1:-}" = "--debug" ]; then
    CARGO_PROFILE=dev
    PROFILE=debug
fi

FFI_CRATE=alliance-ffi
FFI_LIB=alliance_ffi            # liballiance_ffi.a; C module alliance_ffiFFI
FFI_MODULE=${FFI_LIB}FFI
DEVICE_TARGET=aarch64-apple-ios
SIM_TARGETS=(aarch64-apple-ios-sim x86_64-apple-ios)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$TARGET_DIR/ios-xcframework
OUT=$IOS_DIR/AllianceFFI.xcframework

missing() { echo "build-xcframework: $*" >&2; exit 1; }
[ "$(uname -s)" = Darwin ] || missing "runs on macOS only (Xcode's xcodebuild and lipo build the XCFramework)"
command -v xcodebuild >/dev/null || missing "needs Xcode: install it from the App Store, then \`xcode-select --install\`"
xcodebuild -version >/dev/null 2>&1 || missing "xcodebuild does not run: point xcode-select at Xcode (\`sudo xcode-select -s /Applications/Xcode.app\`), not at the Command Line Tools"
command -v lipo >/dev/null || missing "needs lipo (Xcode's command line tools)"
command -v rustup >/dev/null || missing "needs Rust through rustup (https://rustup.rs)"
rustup target add "$DEVICE_TARGET" "${SIM_TARGETS[@]}"

# 1. Static libraries for each Apple target, and a host build for uniffi to read the interface.
#    alliance-ffi on its own, so alliance-core without its `relay` feature: a phone never serves;
#    .cargo/config.toml's LIBSQLITE3_FLAGS applies here too (BENCHMARKS.md, "Size").
for target in "$DEVICE_TARGET" "${SIM_TARGETS[@]}"; do
    cargo build --locked -p "$FFI_CRATE" --lib --target "$target" --profile "$CARGO_PROFILE"
done
# The interface is the same in every profile: an unoptimized host build is quickest to make.
cargo build --locked -p "$FFI_CRATE" --lib
HOST_LIB=$TARGET_DIR/debug/lib$FFI_LIB.dylib

# 2. Swift bindings, C header and module map from the host library (library mode).
rm -rf "$WORK"
mkdir -p "$WORK/generated" "$WORK/headers/$FFI_MODULE" "$WORK/simulator"
cargo run --locked -q -p "$FFI_CRATE" --features bindgen --bin uniffi-bindgen -- \
    generate --library "$HOST_LIB" --language swift --out-dir "$WORK/generated"
cp "$WORK/generated/$FFI_MODULE.h" "$WORK/headers/$FFI_MODULE/"
# xcodebuild wants the name module.modulemap; a folder of its own keeps it from clashing with
# other frameworks' module maps in the app's include path.
cp "$WORK/generated/$FFI_MODULE.modulemap" "$WORK/headers/$FFI_MODULE/module.modulemap"

# 3. One fat simulator library (arm64 + x86_64), then the XCFramework.
lipo -create \
    "$TARGET_DIR/${SIM_TARGETS[0]}/$PROFILE/lib$FFI_LIB.a" \
    "$TARGET_DIR/${SIM_TARGETS[1]}/$PROFILE/lib$FFI_LIB.a" \
    -output "$WORK/simulator/lib$FFI_LIB.a"
rm -rf "$OUT"
xcodebuild -create-xcframework \
    -library "$TARGET_DIR/$DEVICE_TARGET/$PROFILE/lib$FFI_LIB.a" -headers "$WORK/headers" \
    -library "$WORK/simulator/lib$FFI_LIB.a" -headers "$WORK/headers" \
    -output "$OUT"

# 4. The generated Swift goes where the AllianceBindings target compiles it.
find "$IOS_DIR/Sources/AllianceBindings" -maxdepth 1 -name '*.swift' -delete
cp "$WORK"/generated/*.swift "$IOS_DIR/Sources/AllianceBindings/"

echo "build-xcframework: $OUT"
