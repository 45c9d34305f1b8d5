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
BIN="$CARGO_TARGET_DIR/release/allot"
cargo build --release --quiet -p allot

PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
WORK="$(mktemp -d)"
chmod 755 "$WORK"
PG_PORT=$((20000 + RANDOM % 10000))
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir "$WORK/pg" && [ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U allot --auth=trust >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/log" -w \
  -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $WORK/pg -c max_connections=300" start >/dev/null
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U allot allot
DB="postgres://allot@127.0.0.1:$PG_PORT/allot"
psql_q() { psql -X -q -t -A -h 127.0.0.1 -p "$PG_PORT" -U allot allot -c "$1"; }

start_server() { # port, extra flags...
  local port=$1; shift
  "$BIN" serve --listen "127.0.0.1:$port" --log-level warn --sale-items 0 "$@" >/dev/null &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && return; sleep 0.1; done
  echo "allot on port $port did not start" >&2; exit 1
}
stop_servers() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

echo "## machine: $(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
echo "## $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $("$PG_BIN/postgres" --version)"

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
