#!/usr/bin/env bash
# Product search (issue 19, docs/PERFORMANCE.md "Product search"): a release server on a fresh
# SQLite data directory, 100,000 products with varied names, descriptions, attributes and
# categories created through the API (32 parallel requests), then a few thousand searches
# from 16 concurrent clients (CLIENTS="1 4 16": each in turn), a mix of one word, two words, a prefix, a word with filters
# (category tree, price range, active) and a word with facets; p50/p99 per kind. Every kind
# but the filtered one must find something (the tool fails otherwise). Then the same on
# PostgreSQL unless SKIP_POSTGRES=1 (SKIP_SQLITE=1: PostgreSQL only).
#   PRODUCTS=100000 SEARCHES=5000 scripts/bench-search.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PRODUCTS="${PRODUCTS:-100000}"
SEARCHES="${SEARCHES:-5000}"
# Closed-loop clients, one run per figure: CLIENTS="1 4 16" measures each in turn.
CLIENTS="${CLIENTS:-16}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# ALLOT_BIN: measure that binary instead of building this tree.
if [ -n "${ALLOT_BIN:-}" ]; then BIN="$ALLOT_BIN"; else
  BIN="$CARGO_TARGET_DIR/release/allot"
  cargo build --release --quiet -p allot
fi

# shellcheck source=lib-bench.sh
source scripts/lib-bench.sh

echo "## machine: $(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
echo "## $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), binary $BIN"

run() { # label, flags of allot serve...
  local label=$1; shift
  start_server 18301 "$@"
  echo "## $label: seeding $PRODUCTS products"
  python3 scripts/bench/search.py seed --server http://127.0.0.1:18301 \
    --products "$PRODUCTS" --concurrency 32 --roots "$WORK/roots.json"
  python3 scripts/bench/search.py search --server http://127.0.0.1:18301 \
    --requests 500 --concurrency 16 --roots "$WORK/roots.json" >/dev/null
  for clients in $CLIENTS; do
    echo "## $label: $SEARCHES searches, $clients clients (after a warm-up pass)"
    python3 scripts/bench/search.py search --server http://127.0.0.1:18301 \
      --requests "$SEARCHES" --concurrency "$clients" --roots "$WORK/roots.json"
  done
  stop_servers
}
if [ "${SKIP_SQLITE:-0}" != 1 ]; then run "SQLite" --data-dir "$WORK/sqlite-$RANDOM"; fi
if [ "${SKIP_POSTGRES:-0}" != 1 ]; then run "PostgreSQL" --database "$DB"; fi
