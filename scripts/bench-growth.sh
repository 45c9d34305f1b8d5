#!/usr/bin/env bash
# Cost as data grows, and bytes on disk (issue 21, docs/PERFORMANCE.md). On SQLite and on
# PostgreSQL, one server (and one database) each:
#   1. at 0 rows: the hello-world, IssueCoupon (REST) and UseCode (REST) driven by wrk as in
#      scripts/profile.sh, and orders (`allot load orders`, verified by the tool), each with its
#      rate, p50/p99 and the server's CPU per request (utime + stime from /proc);
#   2. growth: GROW_CODES discount codes through the API (`allot bench discount`, 2,000 a call,
#      16 in flight, a million per run: the time for all of them is the "10,000,000 in under
#      10x" figure, beside the first million's), then,
#      with the server stopped, GROW_CODES campaign codes and GROW_ORDERS orders written with
#      SQL (scripts/growth/fill-*.sql: set-based copies of the shapes the server writes, events
#      included), and the same measurements again on the restarted server;
#   3. bytes on disk per issued code, per used code, per order and per generated discount code
#      (the database's size before and after a known number of API-made rows: SQLite the pages
#      in use, PostgreSQL pg_database_size), WAL bytes per row on PostgreSQL
#      (pg_current_wal_lsn), and the WAL's peak over the whole run (the -wal file or the
#      pg_wal directory, sampled every 0.2 s).
# Time and disk on the 2-core machine (noisy): SQLite about 15 minutes and 6 GiB at its peak;
# PostgreSQL about 30 minutes (the fill 15, then load orders' verification, which lists every
# stored order through the API, 9) and 13 GiB. GROW_ORDERS=200000 shortens both.
# Every wrk answer must be 2xx; the fill is checked by the server going on from it (the
# campaign codes' sequence, the counters the orders imply, the verification of load orders).
#
#   ALLOT_BIN=/path/to/allot scripts/bench-growth.sh                 # both backends
#   BACKENDS=sqlite GROW_CODES=1000000 GROW_ORDERS=100000 scripts/bench-growth.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_PATH="${SECONDS_PER_PATH:-8}"
CONNECTIONS="${CONNECTIONS:-64}"
GROW_CODES="${GROW_CODES:-10000000}"
GROW_ORDERS="${GROW_ORDERS:-1000000}"
USE_CODES="${USE_CODES:-400000}"
BACKENDS="${BACKENDS:-sqlite postgres}"
PORT="${PORT:-18231}"
URL="http://127.0.0.1:$PORT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -n "${ALLOT_BIN:-}" ]; then BIN="$ALLOT_BIN"; else
  BIN="$CARGO_TARGET_DIR/release/allot"
  cargo build --release --quiet -p allot
fi
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null

# shellcheck source=lib-bench.sh
source scripts/lib-bench.sh
SAMPLER=""
trap 'kill $SAMPLER 2>/dev/null || true; cleanup' EXIT

echo "## machine: $(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
echo "## $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), binary $BIN, $CONNECTIONS connections, ${SECONDS_PER_PATH}s per path, grow: $GROW_CODES discount codes, $GROW_CODES campaign codes, $GROW_ORDERS orders"

BACKEND="" STORE=() DATA=""
AUTH() { echo "authorization: Bearer $ALLOT_API_KEY"; }
server_pid() { echo "${PIDS[-1]}"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$(server_pid)/stat"; }
cpu_us_per() { # ticks, requests
  awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" 'BEGIN{printf "%.1f", n ? t / hz * 1e6 / n : 0}'
}
# Bytes the database holds: SQLite's pages in use (the file and the WAL's newer pages alike),
# PostgreSQL's pg_database_size (all relation files, dead rows included).
db_bytes() {
  if [ "$BACKEND" = sqlite ]; then
    sqlite3 -readonly "$DATA/allot.db" \
      'SELECT (p.page_count - f.freelist_count) * s.page_size FROM pragma_page_count p, pragma_freelist_count f, pragma_page_size s'
  else
    psql_q "SELECT pg_database_size(current_database())"
  fi
}
wal_lsn() { if [ "$BACKEND" = postgres ]; then psql_q "SELECT pg_current_wal_lsn()"; fi; }
wal_bytes_since() { # lsn
  if [ "$BACKEND" = postgres ]; then psql_q "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$1')"; else echo 0; fi
}
wal_size() {
  if [ "$BACKEND" = sqlite ]; then stat -c %s "$DATA/allot.db-wal" 2>/dev/null || echo 0
  else du -sb "$WORK/pg/pg_wal" | awk '{print $1}'; fi
}
start_sampler() { # file to keep the peak in (kept across calls)
  local file=$1
  [ -f "$file" ] || echo 0 >"$file"
  ( peak=$(cat "$file"); while :; do s=$(wal_size); [ "$s" -gt "$peak" ] && { peak=$s; echo "$peak" >"$file"; }; sleep 0.2; done ) &
  SAMPLER=$!
}
stop_sampler() { kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""; }

# Bytes per row of an API-made write: size and WAL before it, then after with the row count.
declare -A BYTES=() RATE=() CPU=()
measure_begin() { BEFORE_SIZE=$(db_bytes); BEFORE_LSN=$(wal_lsn); }
measure_end() { # name, rows
  local after k="$PHASE $1"; after=$(db_bytes)
  BYTES[$k]=$(awk -v a="$after" -v b="$BEFORE_SIZE" -v n="$2" 'BEGIN{printf "%.0f", n ? (a - b) / n : 0}')
  if [ "$BACKEND" = postgres ]; then
    BYTES[$k]="${BYTES[$k]} $(awk -v w="$(wal_bytes_since "$BEFORE_LSN")" -v n="$2" 'BEGIN{printf "%.0f", n ? w / n : 0}')"
  fi
}

# wrk on one path for SECONDS_PER_PATH; prints the table row, sets REQUESTS (2xx answers).
declare -A OFFSET=()
status=0
drive() { # name, path kind
  local name=$1 kind=$2 list="" prefix="" suffix="" body="" out before after
  before=$(cpu_ticks)
  case "$kind" in
    hello) out=$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_PATH}s" --latency "$URL/health") ;;
    *)
      case "$kind" in
        issue) prefix="/api/v1/campaigns/$CAMPAIGN/coupons"; body='{}' ;;
        use) list="$WORK/use.txt"; prefix="/api/v1/discount-codes/"; suffix="/use" ;;
      esac
      out=$(LIST="$list" PATH_PREFIX="$prefix" PATH_SUFFIX="$suffix" BODY="$body" THREADS=2 \
        OFFSET="${OFFSET[$kind]:-0}" wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_PATH}s" --latency \
        -s scripts/profile/walk.lua "$URL") ;;
  esac
  after=$(cpu_ticks)
  REQUESTS=$(awk '/requests in/{print $1}' <<<"$out")
  OFFSET[$kind]=$(( ${OFFSET[$kind]:-0} + REQUESTS ))
  local bad errors
  bad=$(awk '/Non-2xx/{print $5}' <<<"$out"); bad=${bad:-0}
  errors=$(awk '/Socket errors/{print}' <<<"$out")
  RATE["$PHASE $name"]=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  CPU["$PHASE $name"]=$(cpu_us_per $((after - before)) "$REQUESTS")
  printf '%-8s %10s req/s  p50 %8s  p99 %8s  cpu %7s us/req\n' "$name" "${RATE["$PHASE $name"]}" \
    "$(awk '$1=="50%"{print $2}' <<<"$out")" "$(awk '$1=="99%"{print $2}' <<<"$out")" \
    "${CPU["$PHASE $name"]}"
  if [ "$bad" != 0 ] || [ -n "$errors" ]; then
    echo "  $name: $bad answers not 2xx ${errors:+($errors)}" >&2; status=1
  fi
  REQUESTS=$((REQUESTS - bad))
}
# The tool's lines, and the server's CPU per order over the timed run only: from its "setup:"
# line (printed when the run starts) to its result line; its verification after (it lists
# every stored order through the API, filled ones included) is not counted.
orders() {
  local line t0="" t1="" ok="" rc=1
  while IFS= read -r line; do
    case "$line" in
      setup:*) t0=$(cpu_ticks) ;;
      "orders ("*) t1=$(cpu_ticks); ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line"); echo "$line"
        RATE["$PHASE orders"]=$(awk '{for (i = 1; i < NF; i++) if ($(i + 1) == "req/s") print $i}' <<<"$line") ;;
      "load exit "*) rc=${line#load exit } ;;
      *) echo "$line" ;;
    esac
  done < <("$BIN" load orders --server "$URL" --concurrency "$CONNECTIONS" \
    --seconds "$SECONDS_PER_PATH" --hello-seconds 0 --no-progress 2>&1; echo "load exit $?")
  if [ "$rc" != 0 ] || [ -z "$t0" ] || [ -z "$t1" ]; then
    echo "  load orders failed" >&2; status=1; t0=0 t1=0
  fi
  CPU["$PHASE orders"]=$(cpu_us_per $((t1 - t0)) "${ok:-0}")
  echo "orders: cpu ${CPU["$PHASE orders"]} us/order"
  ORDERS_MADE=${ok:-0}
}
campaign() { # makes a campaign of 10,000,000 codes; sets CAMPAIGN
  CAMPAIGN=$(curl -sf -H "$(AUTH)" -H 'content-type: application/json' \
    -d '{"name":"growth","start_time":"2020-01-01T00:00:00Z","total_coupons":10000000}' \
    "$URL/api/v1/campaigns" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  OFFSET[issue]=0
}
issued() { curl -sf -H "$(AUTH)" "$URL/api/v1/campaigns/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["issued"])'; }
used_codes() { count "SELECT count(*) FROM events WHERE type = 'DiscountCodeUsed'"; }
count() { # sql
  if [ "$BACKEND" = sqlite ]; then sqlite3 -readonly "$DATA/allot.db" "$1"; else psql_q "$1"; fi
}

# The four paths at the database's current size; bytes per row on the first pass.
measure() { # label, phase
  PHASE=$2
  echo "## $LABEL, $1: paths (wrk, $CONNECTIONS connections; orders by allot load orders)"
  drive hello hello
  campaign
  measure_begin; drive issue issue
  local made; made=$(issued "$CAMPAIGN")
  # wrk stops counting with requests still in flight: at most one per connection more.
  if [ "$made" -lt "$REQUESTS" ] || [ "$made" -gt $((REQUESTS + CONNECTIONS)) ]; then
    echo "  issue: $REQUESTS answered 2xx, campaign holds $made" >&2; status=1
  fi
  measure_end "issued code" "$made"
  python3 scripts/growth/codes.py "$URL" "$ALLOT_API_KEY" "$WORK/use.txt" "$USE_CODES" >/dev/null
  OFFSET[use]=0
  local used_before used
  used_before=$(used_codes)
  measure_begin; drive use use
  used=$(( $(used_codes) - used_before ))
  if [ "$used" -lt "$REQUESTS" ] || [ "$used" -gt $((REQUESTS + CONNECTIONS)) ]; then
    echo "  use: $REQUESTS answered 2xx, $used codes used" >&2; status=1
  fi
  measure_end "used code" "$used"
  measure_begin; orders
  measure_end "order" "${ORDERS_MADE:-0}"
}

run() { # backend
  BACKEND=$1
  if [ "$BACKEND" = sqlite ]; then
    LABEL=SQLite; DATA="$WORK/sqlite"; STORE=(--data-dir "$DATA"); WAL_NOTE=""
  else
    LABEL=PostgreSQL; STORE=(--database "$DB"); WAL_NOTE="; then WAL bytes per row"
  fi
  rm -f "$WORK/wal-peak" "$WORK/wal-peak-fill"
  start_sampler "$WORK/wal-peak"
  start_server "$PORT" "${STORE[@]}"
  measure "0 rows" 0

  echo "## $LABEL, growth: $GROW_CODES discount codes through the API (allot bench discount, gRPC)"
  measure_begin
  # A million at a time, so the rate's fall with the table's size shows; the 1 s hello-world
  # and UseCode of each bench run between are not shown (the last one's are, at full size).
  local made=0 chunk n secs out took total=0 first=""
  chunk=$(( GROW_CODES < 1000000 ? GROW_CODES : 1000000 ))
  while [ "$made" -lt "$GROW_CODES" ]; do
    n=$(( GROW_CODES - made < chunk ? GROW_CODES - made : chunk ))
    secs=1; [ $((made + n)) -lt "$GROW_CODES" ] || secs=$SECONDS_PER_PATH
    out=$("$BIN" bench discount --server "$URL" --generate-calls $((n / 2000)) \
      --seconds "$secs" --no-progress) || { echo "$out"; status=1; break; }
    took=$(sed -n 's/.* codes in \([0-9.]*\)s .*/\1/p' <<<"$out")
    made=$((made + n))
    first=${first:-$took}
    total=$(awk -v a="$total" -v b="$took" 'BEGIN{print a + b}')
    printf 'codes %9d to %9d: %8.2f s\n' $((made - n)) "$made" "$took"
  done
  grep -v -- '-> .* codes in' <<<"$out" | grep -v '^allot bench discount' | sed 's/^/last run: /'
  awk -v n="$made" -v t="$total" -v f="$first" -v c="$chunk" 'BEGIN{
    printf "%d codes through the API: %.2f s, %.1fx the first %d (%.2f s)\n", n, t, f ? t / f : 0, c, f}'
  PHASE=grow; measure_end "discount code" "$GROW_CODES"

  echo "## $LABEL, growth: $GROW_CODES campaign codes and $GROW_ORDERS orders with SQL, server stopped"
  # The notification consumer reads the log a little behind: let it reach the head first, so
  # the fill can put it past the filled events (as if it had read them as they came).
  for _ in $(seq 100); do
    [ "$(count "SELECT (SELECT max(seq) FROM events) - last_seq FROM notification_cursor")" -le 0 ] && break
    sleep 0.2
  done
  stop_servers
  stop_sampler; start_sampler "$WORK/wal-peak-fill"
  local t0 t1 events_before
  events_before=$(count "SELECT count(*) FROM events")
  t0=$(date +%s.%N)
  sed -e "s/@CODES@/$GROW_CODES/g; s/@ORDERS@/$GROW_ORDERS/g; s/@NOW@/$(date +%s%3N)/g" \
    "scripts/growth/fill-$BACKEND.sql" >"$WORK/fill.sql"
  if [ "$BACKEND" = sqlite ]; then sqlite3 "$DATA/allot.db" <"$WORK/fill.sql" >/dev/null
  else psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U allot allot -f "$WORK/fill.sql" >/dev/null; fi
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "fill: %.1f s\n", b - a}'
  echo "events written by the fill: $(( $(count "SELECT count(*) FROM events") - events_before ))"
  echo "rows: $(count "SELECT count(*) FROM discount_codes") discount codes, $(count "SELECT count(*) FROM campaign_coupons") campaign codes, $(count "SELECT count(*) FROM orders") orders, $(count "SELECT count(*) FROM order_lines") order lines, $(count "SELECT count(*) FROM events") events"
  echo "database: $(( $(db_bytes) / 1048576 )) MiB"
  echo "notification consumer: $(count "SELECT (SELECT max(seq) FROM events) - last_seq FROM notification_cursor") events behind the log's head"
  stop_sampler; start_sampler "$WORK/wal-peak"
  start_server "$PORT" "${STORE[@]}"
  measure "$GROW_CODES rows" grown
  stop_servers
  stop_sampler

  echo "## $LABEL: bytes on disk per row (database size difference over API-made rows${WAL_NOTE:-})"
  local key size wal
  for key in "0 issued code" "0 used code" "0 order" "grown issued code" "grown used code" \
             "grown order" "grow discount code"; do
    read -r size wal <<<"${BYTES[$key]}"
    printf '%-5s %-14s %8s B%s\n' "${key%% *}" "${key#* }" "$size" "${wal:+  wal $wal B}"
  done
  echo "WAL peak: $(( $(cat "$WORK/wal-peak") / 1048576 )) MiB over the API runs, $(( $(cat "$WORK/wal-peak-fill") / 1048576 )) MiB during the fill"
  if [ "$BACKEND" = sqlite ]; then rm -rf "$DATA"; fi
  echo "## $LABEL: $GROW_CODES rows against 0 (the issue asks within 10%)"
  local path
  for path in hello issue use orders; do
    awk -v p="$path" -v r0="${RATE["0 $path"]:-0}" -v r1="${RATE["grown $path"]:-0}" \
      -v c0="${CPU["0 $path"]:-0}" -v c1="${CPU["grown $path"]:-0}" 'BEGIN{
        printf "%-8s rate %+6.1f%%  cpu/req %+6.1f%%\n", p, r0 ? (r1 / r0 - 1) * 100 : 0,
          c0 ? (c1 / c0 - 1) * 100 : 0}'
  done
  BYTES=() RATE=() CPU=()
}

for backend in $BACKENDS; do run "$backend"; done
exit $status
