#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests that start real servers (allot itself,
# and PostgreSQL clusters and Redis servers of their own). Installs what it needs that a fresh
# machine may lack.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL server binaries: the tests start real clusters and fail (not skip) without them.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  echo "PostgreSQL server binaries not found; installing them with apt-get"
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
fi
# Redis server: the shared MEGADEAL admission tests start real ones and fail without it.
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  echo "redis-server not found; installing it with apt-get"
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
if ! /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  echo "python3-aiosmtpd not found; installing it with apt-get (the test SMTP server)"
  apt-get update -qq && apt-get install -y -qq python3-aiosmtpd >/dev/null
fi

# Headless Chromium, chromedriver and axe-core: the console's browser tests fail without them.
./scripts/test-assets.sh
# The official Connect client (connect-es, pinned) for the TLS tests; node and npm first.
if ! command -v npm >/dev/null 2>&1; then
  echo "node/npm not found; installing them with apt-get (the Connect client of the TLS tests)"
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
./scripts/connect-client.sh

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# The integration suite again, with every server on a PostgreSQL cluster of its own, the
# server-process tests (restart, SIGKILL of allot) included: their cluster outlives the allot
# restarts. Only tests of SQLite itself (admin backup) stay on SQLite in both runs. The
# clusters speak only TLS and admit only a client certificate, and every connection says
# sslmode=verify-full (ALLOT_TEST_PG_TLS); cleartext PostgreSQL stays covered by the first run
# (the storage crate's tests, the differential test, the api tests with clusters of their own).
echo "== integration suite on PostgreSQL over TLS (verify-full, client certificates)"
ALLOT_TEST_BACKEND=postgres ALLOT_TEST_PG_TLS=1 cargo test -p allot --test api --no-fail-fast "$@" 2>&1 | tee -a "$log" || status=$?
# One closing line for the whole suite: cargo prints one "test result" line per test target,
# and the last of those may well be a target with no tests.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
