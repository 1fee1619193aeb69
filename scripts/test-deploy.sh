#!/usr/bin/env bash
# deploy/ and monitoring: the systemd unit passes `systemd-analyze verify` (systemd installed
# when missing), the example relay.toml loads, a real Prometheus (Debian's package, about 20 MB)
# scrapes a relay's /metrics while a device syncs and finds the counters moved, and the
# Dockerfile builds and its binary starts where Docker runs. Where Docker does not (no daemon),
# this says so; cli/tests/deploy.rs still checks the Dockerfile's structure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if ! command -v systemd-analyze >/dev/null || ! command -v prometheus >/dev/null; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        systemd prometheus
fi

cargo build -q -p alliance-cli
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/alliance"
tmp=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# verify checks that ExecStart's binary exists: point the unit at the one just built.
sed "s|/usr/local/bin/alliance|$BIN|g" deploy/alliance-relay.service >"$tmp/alliance-relay.service"
systemd-analyze verify "$tmp/alliance-relay.service"
echo "systemd-analyze verify deploy/alliance-relay.service: ok"
# Its hardening, scored by systemd itself (shown 0 best to 10 worst; --threshold counts in
# tenths): fails above 2.0.
systemd-analyze security --offline=true --threshold=20 "$tmp/alliance-relay.service" | tail -1

"$BIN" --db "$tmp/relay.db" relay --config deploy/relay.toml --check-config

# GET $2 from 127.0.0.1:$1 (bash's /dev/tcp: no HTTP client needed); prints the body.
http_get() {
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$2" >&3
    sed '1,/^\r$/d' <&3
    exec 3<&-
}

# A relay with its admin listener, and a device that syncs one plan through it.
"$BIN" --db "$tmp/relay.db" relay --listen 127.0.0.1:0 --no-auth --admin 127.0.0.1:0 \
    >"$tmp/relay.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do [ "$(wc -l <"$tmp/relay.out")" -ge 2 ] && break; sleep 0.1; done
relay_url=$(sed -n 's/^relay listening on //p' "$tmp/relay.out")
admin=$(sed -n 's|^admin listening on http://||p' "$tmp/relay.out")
admin_port=${admin##*:}
"$BIN" --db "$tmp/device.db" init --name Dana --role counselor >/dev/null
"$BIN" --db "$tmp/device.db" plan new --title "A plan" --client-name Sam >/dev/null
"$BIN" --db "$tmp/device.db" sync --server "$relay_url" >/dev/null
# (Not `promtool check metrics`: it lints the older Prometheus text format, and /metrics
# speaks OpenMetrics, whose counters' HELP lines name the family without `_total`.)

# Prometheus scrapes it every second; its query API must report what the device did.
prom_port=$((20000 + RANDOM % 20000))
cat >"$tmp/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: alliance-relay
    static_configs:
      - targets: ["$admin"]
YAML
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
found=""
for _ in $(seq 60); do
    sleep 1
    answer=$(http_get "$prom_port" \
        '/api/v1/query?query=alliance_relay_plans_held%20%2B%20alliance_relay_connections_total' \
        2>/dev/null || true)
    # plans_held (1) + connections_total (1) = 2 once both are scraped.
    if grep -q '"value":\[[0-9.]*,"2"\]' <<<"$answer"; then
        found=yes
        break
    fi
done
if [ -z "$found" ]; then
    echo "Prometheus did not report the relay's counters: ${answer:-no answer}" >&2
    tail -5 "$tmp/prometheus.log" >&2
    exit 1
fi
echo "Prometheus scraped the relay: plans_held + connections_total = 2"

# The image's runtime stage is debian:bookworm-slim with nothing added: the binary may need no
# shared library beyond glibc's and libgcc_s (both in every Debian base image).
extra=$(ldd "$BIN" | awk '{print $1}' \
    | grep -Ev '^(linux-vdso\.so\.1|libgcc_s\.so\.1|libm\.so\.6|libc\.so\.6|libpthread\.so\.0|libdl\.so\.2|/lib64/ld-linux-x86-64\.so\.2|/lib/ld-linux-aarch64\.so\.1)$' \
    || true)
if [ -n "$extra" ]; then
    echo "the binary needs libraries a slim base image lacks: $extra" >&2
    exit 1
fi
echo "shared libraries: glibc and libgcc_s only"

if docker info >/dev/null 2>&1; then
    docker build -f deploy/Dockerfile -t alliance-relay:test .
    docker run --rm --entrypoint /usr/local/bin/alliance alliance-relay:test --version
    docker run --rm alliance-relay:test --check-config
else
    echo "Docker is not usable here (docker info failed): deploy/Dockerfile was not built;" \
        "cli/tests/deploy.rs checked its structure"
fi
