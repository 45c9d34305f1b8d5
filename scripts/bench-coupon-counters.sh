#!/usr/bin/env bash
# Coupon allocations and redemptions per second on PostgreSQL (issue 21: the counters off the
# one row per type), on a fresh cluster of its own with its durable defaults: INSTANCES allot
# servers on it, each driven by its own `allot load coupons` (COUPONS in all, CLIENTS clients
# each) at the same time, while pg_stat_activity is sampled every 0.5 s for the backends
# waiting on a lock (all of them, and those whose statement touches coupon_counters). Ends by
# checking the counters' sums against the rows.
#   ALLOT_BIN=path/to/allot scripts/bench-coupon-counters.sh [label]
# Compare two builds by running each in turn, A B A B: the machine may be shared.
set -euo pipefail
cd "$(dirname "$0")/.."
COUPONS="${COUPONS:-20000}"
CLIENTS="${CLIENTS:-64}"
INSTANCES="${INSTANCES:-1}"
LABEL="${1:-run}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -n "${ALLOT_BIN:-}" ]; then BIN="$ALLOT_BIN"; else
  BIN="$CARGO_TARGET_DIR/release/allot"
  cargo build --release --quiet -p allot
fi

# shellcheck source=lib-bench.sh
source scripts/lib-bench.sh

servers=()
for i in $(seq "$INSTANCES"); do
  port=$((18200 + i))
  start_server "$port" --database "$DB"
  servers+=("http://127.0.0.1:$port")
done

# The sampler: bounded (at most 20 minutes of samples), stopped below.
sample_sql="SELECT count(*) FILTER (WHERE wait_event_type = 'Lock' AND query LIKE '%coupon_counters%'),
                   count(*) FILTER (WHERE wait_event_type = 'Lock'),
                   count(*) FILTER (WHERE state = 'active')
            FROM pg_stat_activity WHERE datname = 'allot' AND pid <> pg_backend_pid()"
(for _ in $(seq 2400); do psql_q "$sample_sql" || true; sleep 0.5; done) >"$WORK/samples" &
sampler=$!

outs=()
for i in $(seq "$INSTANCES"); do
  out="$WORK/load-$i"
  outs+=("$out")
  "$BIN" load coupons --server "${servers[$((i - 1))]}" --coupons $((COUPONS / INSTANCES)) \
    --concurrency "$CLIENTS" --hello-seconds 1 --no-progress >"$out" 2>&1 &
  PIDS+=($!)
done
status=0
for p in "${PIDS[@]:$INSTANCES}"; do wait "$p" || status=1; done
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true

echo "## $LABEL: $INSTANCES instance(s), $COUPONS coupons, $CLIENTS clients each, binary $BIN"
for out in "${outs[@]}"; do grep -E '^coupon (allocation|redemption)|verified|rror' "$out" || true; done
awk -F'|' '{n++; c+=$1; l+=$2; a+=$3; if ($1>mc) mc=$1}
  END {printf "pg_stat_activity, %d samples: waiting on coupon_counters mean %.1f max %d; on any lock mean %.1f; active mean %.1f\n", n, c/n, mc, l/n, a/n}' "$WORK/samples"
echo "counters whose sums differ from the rows (must be 0): $(psql_q "
  SELECT count(*) FROM (SELECT type, SUM(allocated) AS a, SUM(redeemed) AS r
                        FROM coupon_counters GROUP BY type) k
  WHERE k.a <> (SELECT count(*) FROM coupon_allocations x WHERE COALESCE(x.type, 'NONE') = k.type)
     OR k.r <> (SELECT count(*) FROM coupon_redemptions x
                WHERE COALESCE(x.type, 'NONE') = k.type AND x.reversed_at_ms IS NULL)")"
exit $status
