#!/usr/bin/env bash
# The phone library as cargo-ndk and the XCFramework script build it: alliance-ffi on its own
# (no feature unification with the CLI, relay and test crates), so alliance-core without its
# `relay` feature; and alliance-core's own targets without default features. Both lint-clean:
# a relay-only item left ungated shows up here as an unused or unresolved one.
# Then each crate that uses alliance-core on its own, so none relies on another turning `relay` on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

printf '\n== %s\n' "cargo clippy -p alliance-ffi --lib (alliance-core without the relay)"
cargo clippy --locked -p alliance-ffi --lib -- -D warnings
printf '\n== %s\n' "cargo clippy -p alliance-core --no-default-features --all-targets"
cargo clippy --locked -p alliance-core --no-default-features --all-targets -- -D warnings
# Library and binaries only: tests and examples bring dev-dependencies, which turn features on.
printf '\n== %s\n' "each crate alone: cargo check -p … (lib and bins)"
for crate in alliance-relay-pg alliance-cli alliance-tests alliance-bench; do
    cargo check --locked -q -p "$crate"
done
