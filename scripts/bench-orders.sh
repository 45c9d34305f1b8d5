#!/usr/bin/env bash
# Order creation (3 lines and a coupon each), on SQLite and on PostgreSQL, in one run
# (issue 7, docs/PERFORMANCE.md): a closed loop (each customer orders again as soon as
# answered: the most the server takes) at 64 and 1,000 customers, and 1,000 customers who
# pause about a second between orders (the latency a shop's customers see at that crowd),
# each beside the HTTP hello-world of the same server at the same load (for the paused runs the
# hello-world pauses too, so its latency is the floor of the stack). Every run is verified by the tool.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_PHASE="${SECONDS_PER_PHASE:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# ALLOT_BIN: measure that binary instead of building this tree (builds side by side, one run).
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
  for load in "64 0" "1000 0" "1000 1000"; do
    read -r clients think <<<"$load"
    start_server 18201 "$@"
    echo "## $label: $clients customers, pause ${think} ms"
    "$BIN" load orders --server http://127.0.0.1:18201 --concurrency "$clients" \
      --seconds "$SECONDS_PER_PHASE" --think-ms "$think" \
      --hello-seconds "$SECONDS_PER_PHASE" --no-progress
    stop_servers
  done
}
run "SQLite" --data-dir "$WORK/sqlite-$RANDOM"
run "PostgreSQL" --database "$DB"
