#!/usr/bin/env bash
# Promotions (issue 16, docs/PERFORMANCE.md), on SQLite and on PostgreSQL, a fresh server each:
# `allot load promotions` measures, in one run against one server, the HTTP hello-world,
# today's coupon redemption, redemption through a promotion with a money budget (a hold, then
# its redemption), a race of 1,000 checkouts for a budget that covers 100, and the preview of a
# 10-line cart against 1,000 active automatic promotions (one client, then 64); the tool checks
# every budget through the API. Then this script checks the database itself: for every
# promotion, its counters equal what its redeemed and held holds say, within its limits.
# Exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_PHASE="${SECONDS_PER_PHASE:-5}"
REDEMPTIONS="${REDEMPTIONS:-10000}"
PROMOTIONS="${PROMOTIONS:-1000}"
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

# Promotions whose counters disagree with their holds, or exceed a limit: must be none.
INVARIANT="SELECT count(*) FROM promotions p WHERE
  (p.budget_minor IS NOT NULL AND p.redeemed_minor + p.held_minor > p.budget_minor)
  OR (p.redemptions_max IS NOT NULL AND p.redemptions + p.held > p.redemptions_max)
  OR p.redeemed_minor <> (SELECT coalesce(sum(i.amount_minor), 0) FROM promotion_hold_items i
       JOIN promotion_holds h ON h.id = i.hold_id WHERE i.promotion_id = p.id AND h.status = 'redeemed')
  OR p.redemptions <> (SELECT count(*) FROM promotion_hold_items i
       JOIN promotion_holds h ON h.id = i.hold_id WHERE i.promotion_id = p.id AND h.status = 'redeemed')
  OR p.held_minor <> (SELECT coalesce(sum(i.amount_minor), 0) FROM promotion_hold_items i
       JOIN promotion_holds h ON h.id = i.hold_id WHERE i.promotion_id = p.id AND h.status = 'held')
  OR p.held <> (SELECT count(*) FROM promotion_hold_items i
       JOIN promotion_holds h ON h.id = i.hold_id WHERE i.promotion_id = p.id AND h.status = 'held');"

failed=0
run() { # label, query command, flags of allot serve...
  local label=$1 query=$2; shift 2
  start_server 18211 "$@"
  echo "## $label"
  "$BIN" load promotions --server http://127.0.0.1:18211 --promotions "$PROMOTIONS" \
    --redemptions "$REDEMPTIONS" --preview-seconds "$SECONDS_PER_PHASE" \
    --hello-seconds "$SECONDS_PER_PHASE" --no-progress | tee "$WORK/out"
  stop_servers
  local bad
  bad=$($query "$INVARIANT")
  local checked
  checked=$($query "SELECT count(*) FROM promotions;")
  if [ "$bad" = 0 ]; then
    echo "database: all $checked promotions' counters equal their redeemed and held holds, within their limits"
  else
    echo "database: $bad of $checked promotions disagree with their holds or exceed a limit" >&2
    failed=1
  fi
  awk '/^preview, 10 lines, c=1 /{ for (i = 1; i <= NF; i++) if ($i ~ /^p99=/) { v = substr($i, 5); sub("ms", "", v);
         print "target preview p99 < 5 ms (one client, at the client): " v " ms, " (v + 0 < 5 ? "met" : "NOT met") } }
       /promotion \/ coupon = /{ r = $NF; print "target redemption >= half of coupon redemption: " r ", " (r + 0 >= 0.5 ? "met" : "NOT met") }' "$WORK/out"
}

SQLITE_DIR="$WORK/sqlite-$RANDOM"
sqlite_q() { sqlite3 "$SQLITE_DIR/allot.db" "$1"; }
run "SQLite" sqlite_q --data-dir "$SQLITE_DIR"
run "PostgreSQL" psql_q --database "$DB"
exit "$failed"
