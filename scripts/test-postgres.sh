#!/usr/bin/env bash
# A private PostgreSQL for the relay's PostgreSQL tests (relay-pg/, cli/tests/instances.rs):
# installs Debian's PostgreSQL 15 when it is missing (without creating or starting the system
# cluster), starts a throwaway server in a temporary directory on a free loopback port, runs
# the given command with ALLIANCE_TEST_POSTGRES_URL set to it and ALLIANCE_REQUIRE_POSTGRES=1
# (so those tests fail rather than skip), and stops the server and deletes its files at the
# end, whatever the command did.
#
#   scripts/test-postgres.sh cargo test --workspace    (what scripts/test runs)
#   scripts/test-postgres.sh                           only the PostgreSQL tests
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PG_BIN=/usr/lib/postgresql/15/bin
if ! [ -x "$PG_BIN/initdb" ] || ! [ -x "$PG_BIN/pg_ctl" ]; then
    # No "main" cluster and no service: the tests start their own server.
    mkdir -p /etc/postgresql-common
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confold postgresql-15
fi

# initdb refuses to run as root: the server runs as the `postgres` user the package creates.
as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

tmp=$(mktemp -d)
chmod 755 "$tmp"
data="$tmp/data"
mkdir "$data"
# The server's files, log and socket: all its own.
if [ "$(id -u)" = 0 ]; then chown -R postgres: "$tmp"; fi
stop() {
    as_postgres "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap stop EXIT

# A free loopback port, chosen by the kernel.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000)))
as_postgres "$PG_BIN/initdb" -D "$data" -U alliance --auth=trust -E UTF8 --no-locale >/dev/null
# Enough connections for two relay instances and the load test; fsync off: a test server
# that is thrown away (durability across a machine crash is not what the tests check).
as_postgres "$PG_BIN/pg_ctl" -D "$data" -l "$tmp/server.log" -w \
    -o "-h 127.0.0.1 -p $port -k $tmp -c max_connections=200 -c fsync=off" start >/dev/null \
    || { cat "$tmp/server.log"; exit 1; }
as_postgres "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U alliance alliance_test

export ALLIANCE_TEST_POSTGRES_URL="postgres://alliance@127.0.0.1:$port/alliance_test"
export ALLIANCE_REQUIRE_POSTGRES=1
echo "PostgreSQL 15 for the tests at $ALLIANCE_TEST_POSTGRES_URL"
if [ $# -gt 0 ]; then
    "$@"
else
    cargo test -p alliance-relay-pg
    cargo test -p alliance-cli --test instances
fi
