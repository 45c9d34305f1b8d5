#!/usr/bin/env bash
# IssueCoupon on PostgreSQL, in one run on this machine (issue 6, docs/PERFORMANCE.md):
#   1. the classic design, driven by pgbench with scripts/bench/classic-issue.sql;
#   2. Allot with one instance on PostgreSQL;
#   3. Allot with three instances on the same PostgreSQL, clients spread over them;
#   4. Allot on its embedded SQLite;
# each Allot run beside the hello-world of the same servers (GET /health or the gRPC health
# check), every run verified (the codes received are distinct and are the campaign's).
# PostgreSQL runs with its durable defaults (fsync, synchronous_commit on, full_page_writes).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_PHASE="${SECONDS_PER_PHASE:-10}"
CLIENTS="${CLIENTS:-256}"
PROTOCOLS="${PROTOCOLS:-grpc,rest}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# ALLOT_BIN: measure that binary instead of building this tree (builds side by side, one run).
if [ -n "${ALLOT_BIN:-}" ]; then BIN="$ALLOT_BIN"; else
  BIN="$CARGO_TARGET_DIR/release/allot"
  cargo build --release --quiet -p allot
fi

# shellcheck source=lib-bench.sh
source scripts/lib-bench.sh

echo "## machine: $(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
echo "## $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), binary $BIN, $("$PG_BIN/postgres" --version)"

# Migrations: the first instance applies them.
start_server 18101 --database "$DB"; stop_servers

echo "## classic design: pgbench, one UPDATE + one INSERT per transaction"
for c in 8 64 "$CLIENTS"; do
  id=$(psql_q "INSERT INTO campaigns (name, starts_at_ms, total, created_at_ms) VALUES ('classic', 0, 10000000, 0) RETURNING id")
  out=$(pgbench -n -h 127.0.0.1 -p "$PG_PORT" -U allot -c "$c" -j 2 -T "$SECONDS_PER_PHASE" \
    -f scripts/bench/classic-issue.sql -D campaign="$id" allot 2>&1)
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
  lat=$(sed -n 's/^latency average = \(.*\)/\1/p' <<<"$out")
  issued=$(psql_q "SELECT issued FROM campaigns WHERE id = $id")
  rows=$(psql_q "SELECT count(*) FROM campaign_coupons WHERE campaign_id = $id")
  printf 'classic c=%-4s %s issues/s  latency avg %s  (issued %s, rows %s)\n' "$c" "$tps" "$lat" "$issued" "$rows"
done

bench() { # label, servers
  echo "## $1"
  "$BIN" bench issue --server "$2" --seconds "$SECONDS_PER_PHASE" --concurrency "$CLIENTS" \
    --protocols "$PROTOCOLS" --no-progress
}

start_server 18101 --database "$DB"
bench "Allot, 1 instance on PostgreSQL" "http://127.0.0.1:18101"
stop_servers

start_server 18101 --database "$DB"; start_server 18102 --database "$DB"; start_server 18103 --database "$DB"
bench "Allot, 3 instances on PostgreSQL" "http://127.0.0.1:18101,http://127.0.0.1:18102,http://127.0.0.1:18103"
stop_servers
echo "## database after the runs: campaigns where issued <> rows (must be none)"
psql_q "SELECT count(*) FROM campaigns c WHERE issued <> (SELECT count(*) FROM campaign_coupons k WHERE k.campaign_id = c.id)"

start_server 18101 --data-dir "$WORK/sqlite"
bench "Allot, 1 instance on SQLite" "http://127.0.0.1:18101"
stop_servers
