#!/usr/bin/env bash
# deploy/: the systemd unit passes `systemd-analyze verify` (systemd installed when missing),
# the example relay.toml loads, and the Dockerfile builds and its binary starts where Docker
# runs. Where it does not (no daemon), this says so; cli/tests/deploy.rs still checks the
# Dockerfile's structure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if ! command -v systemd-analyze >/dev/null; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd
fi

cargo build -q -p alliance-cli
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/alliance"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# verify checks that ExecStart's binary exists: point the unit at the one just built.
sed "s|/usr/local/bin/alliance|$BIN|g" deploy/alliance-relay.service >"$tmp/alliance-relay.service"
systemd-analyze verify "$tmp/alliance-relay.service"
echo "systemd-analyze verify deploy/alliance-relay.service: ok"

"$BIN" --db "$tmp/relay.db" relay --config deploy/relay.toml --check-config

if docker info >/dev/null 2>&1; then
    docker build -f deploy/Dockerfile -t alliance-relay:test .
    docker run --rm --entrypoint /usr/local/bin/alliance alliance-relay:test --version
    docker run --rm alliance-relay:test --check-config
else
    echo "Docker is not usable here (docker info failed): deploy/Dockerfile was not built;" \
        "cli/tests/deploy.rs checked its structure"
fi
