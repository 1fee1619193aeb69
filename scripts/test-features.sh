#!/usr/bin/env bash
# The phone library as cargo-ndk and the XCFramework script build it: alliance-ffi on its own
# (no feature unification with the CLI, relay and test crates), so alliance-core without its
# `relay` feature; and alliance-core's own targets without default features. Both lint-clean:
# a relay-only item left ungated shows up here as an unused or unresolved one.
# After the workspace's clippy only these two crates are checked again (under a minute).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

printf '\n== %s\n' "cargo clippy -p alliance-ffi --lib (alliance-core without the relay)"
cargo clippy --locked -p alliance-ffi --lib -- -D warnings
printf '\n== %s\n' "cargo clippy -p alliance-core --no-default-features --all-targets"
cargo clippy --locked -p alliance-core --no-default-features --all-targets -- -D warnings
