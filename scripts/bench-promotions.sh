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

ADMIN_EMAIL="bench-admin@example.com"
ADMIN_PASSWORD="bench console password $RANDOM$RANDOM"
BASE="http://127.0.0.1:18211"

# The console's promotions pages once the load has filled the store (1,002 promotions, the
# budgeted one with every hold of the run): signed in through the sign-in form, each page asked
# 20 times in turn; curl's time to the first byte (the server's work), median and max.
time_console_pages() {
  local jar="$WORK/cookies" id path
  rm -f "$jar"
  curl -sf -o /dev/null -c "$jar" -b "$jar" -H "Origin: $BASE" \
    --data-urlencode "email=$ADMIN_EMAIL" --data-urlencode "password=$ADMIN_PASSWORD" "$BASE/console/sign-in"
  id=$(curl -sf -H "authorization: Bearer $ALLOT_API_KEY" "$BASE/api/v1/promotions?limit=1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["promotions"][0]["id"])')
  echo "| console page | median | max | size |"
  echo "|---|---|---|---|"
  for path in /console/promotions "/console/promotions?after=500" "/console/promotions/$id" \
              /console/promotions/new /console/promotions/preview; do
    for _ in $(seq 20); do
      curl -s -o /dev/null -b "$jar" -w '%{http_code} %{time_starttransfer} %{size_download}\n' "$BASE$path"
    done | sort -k2 -n | awk -v p="$path" '
      $1 != 200 { bad = $1 } { t[NR] = $2 * 1000; size = $3 }
      END { if (bad) { printf "| `%s` | answered %s | | |\n", p, bad; exit }
            m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2;
            printf "| `%s` | %.1f ms | %.1f ms | %.0f KB |\n", p, m, t[NR], size / 1024 }'
  done
}

failed=0
run() { # label, query command, flags of allot serve...
  local label=$1 query=$2; shift 2
  ALLOT_NEW_USER_PASSWORD="$ADMIN_PASSWORD" "$BIN" admin create-user "$@" \
    --email "$ADMIN_EMAIL" --role admin >/dev/null
  start_server 18211 "$@"
  echo "## $label"
  "$BIN" load promotions --server "$BASE" --promotions "$PROMOTIONS" \
    --redemptions "$REDEMPTIONS" --preview-seconds "$SECONDS_PER_PHASE" \
    --hello-seconds "$SECONDS_PER_PHASE" --no-progress | tee "$WORK/out"
  time_console_pages
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
       /\/ coupon = /{ r = $NF; w = ($0 ~ /one call/) ? "one call" : "hold + redeem";
         print "target redemption (" w ") >= half of coupon redemption: " r ", " (r + 0 >= 0.5 ? "met" : "NOT met") }' "$WORK/out"
}

SQLITE_DIR="$WORK/sqlite-$RANDOM"
sqlite_q() { sqlite3 "$SQLITE_DIR/allot.db" "$1"; }
run "SQLite" sqlite_q --data-dir "$SQLITE_DIR"
run "PostgreSQL" psql_q --database "$DB"
exit "$failed"
