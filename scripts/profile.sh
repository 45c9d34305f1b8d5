#!/usr/bin/env bash
# Server CPU per request on each hot path, and where it goes (issue 21, docs/PERFORMANCE.md
# "Where the CPU goes"). A fresh SQLite server per run, driven by wrk (a cheap C client, so
# the server gets most of the two cores) with 64 connections; for each path:
#   (hello: GET /health; issue: REST IssueCoupon; use: a discount code's use; allocate: a
#   STANDARD coupon to a new user; redeem: a FREE coupon; generate: 2,000 discount codes;
#   order: an order of 3 lines and a coupon, by `allot load orders` instead of wrk)
#   - requests per second, and the server's own CPU time (utime + stime of the process, from
#     /proc) divided by the requests answered: microseconds of CPU per request, a figure that
#     moves far less with the machine's mood than a rate does;
#   - with FLAME=DIR, a second run under `perf record` (DWARF call graphs), folded and drawn by
#     inferno into DIR/<path>.svg, and the share of samples in a few named parts (the request
#     log, JSON, SQLite, the kernel's network stack...).
# Every answer must be 2xx: a run with another status is reported and the script fails.
#
#   scripts/profile.sh                         # all paths, figures only
#   FLAME=docs/perf scripts/profile.sh         # and flame graphs (perf; inferno is installed
#                                              # with cargo install when missing)
#   PATHS="hello issue" LOG_LEVEL=warn ALLOT_BIN=/path/to/allot scripts/profile.sh
#   KEEP_FOLDED=1 FLAME=/tmp/f scripts/profile.sh   # keep the folded stacks for a closer look
#   BACKEND=postgres scripts/profile.sh        # on a PostgreSQL cluster of its own (lib-bench.sh);
#                                              # adds PostgreSQL's CPU per request (its backends')
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_PATH="${SECONDS_PER_PATH:-8}"
CONNECTIONS="${CONNECTIONS:-64}"
BACKEND="${BACKEND:-sqlite}"
if [ "$BACKEND" = postgres ]; then ITEMS="${ITEMS:-150000}"; else ITEMS="${ITEMS:-500000}"; fi
PATHS="${PATHS:-hello issue use allocate redeem generate order}"
LOG_LEVEL="${LOG_LEVEL:-info}"
FLAME="${FLAME:-}"
PORT="${PORT:-18095}"
URL="http://127.0.0.1:$PORT"
WORK="$(mktemp -d)"
if [ -n "${ALLOT_BIN:-}" ]; then BIN="$ALLOT_BIN"; else
  BIN="${CARGO_TARGET_DIR:-target}/release/allot"
  cargo build --release --quiet -p allot
fi
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null
if [ -n "$FLAME" ]; then
  command -v perf >/dev/null || { echo "FLAME needs perf (apt-get install linux-perf)" >&2; exit 1; }
  command -v inferno-flamegraph >/dev/null || cargo install --quiet --locked inferno
  mkdir -p "$FLAME"
fi

PID=""
STORAGE=(--data-dir "$WORK/data")
if [ "$BACKEND" = postgres ]; then
  rmdir "$WORK"
  # shellcheck source=lib-bench.sh
  source scripts/lib-bench.sh # its own WORK, a cluster, DB, and a trap that removes them
  STORAGE=(--database "$DB")
  trap 'kill $PID 2>/dev/null || true; cleanup' EXIT
else
  trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
fi
ALLOT_API_KEY=$("$BIN" admin create-api-key "${STORAGE[@]}" --name profile --role admin |
  awk 'NR==1{print $NF}')
export ALLOT_API_KEY
"$BIN" serve --listen "127.0.0.1:$PORT" "${STORAGE[@]}" --log-level "$LOG_LEVEL" \
  --code-use-rate-per-sec 0 2>"$WORK/server.log" >/dev/null &
PID=$!
for _ in $(seq 50); do curl -sf "$URL/health" >/dev/null && break; sleep 0.1; done
python3 scripts/profile/setup.py "$URL" "$ALLOT_API_KEY" "$WORK" "$ITEMS"
campaign=$(cat "$WORK/campaign")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
# PostgreSQL's: its backends' and background processes' (the server's connections stay open
# through a run; a process gone between the two readings is counted as 0 at the second).
pg_ticks() {
  local total=0 p
  for p in $(pgrep -P "$(head -1 "$WORK/pg/postmaster.pid")"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
declare -A OFFSET=()
# Runs wrk on path $1 for $2 seconds; prints wrk's output.
drive() {
  local path=$1 seconds=$2 list="" prefix="" suffix="" body=""
  case "$path" in
    hello) wrk -t2 -c"$CONNECTIONS" -d"${seconds}s" --timeout 10s --latency "$URL/health"; return ;;
    order) # Allot's own load tool (it sets up a catalog, stock and coupons, and verifies),
      # its figures retold in wrk's words for the lines below.
      "$BIN" load orders --server "$URL" --concurrency "$CONNECTIONS" --seconds "$seconds" \
        --hello-seconds 0 --no-progress | awk '/^orders/{
          for (i = 1; i <= NF; i++) {
            if ($i ~ /^ok=/) print substr($i, 4), "requests in"
            if ($i == "req/s") print "Requests/sec:", $(i - 1)
            if ($i ~ /^p50=/) print "50%", substr($i, 5)
            if ($i ~ /^p99=/) print "99%", substr($i, 5)
            if ($i ~ /^failed=/ && $i != "failed=0") print "Non-2xx or 3xx responses:", substr($i, 8)
          } }'
      return ;;
    issue) prefix="/api/v1/campaigns/$campaign/coupons"; body='{}' ;;
    use) list="$WORK/use.txt"; prefix="/api/v1/discount-codes/"; suffix="/use" ;;
    allocate) prefix="/api/v1/coupons/requests"; body='{"user_id":"u{i}","type":"STANDARD"}' ;;
    redeem) list="$WORK/redeem.txt"; prefix="/api/v1/coupons/"; suffix="/redeem"; body='{"user_id":"u{i}"}' ;;
    generate) prefix="/api/v1/discount-codes/batches"; body='{"count":2000,"length":8}' ;;
    *) echo "unknown path $path" >&2; exit 1 ;;
  esac
  LIST="$list" PATH_PREFIX="$prefix" PATH_SUFFIX="$suffix" BODY="$body" THREADS=2 \
    OFFSET="${OFFSET[$path]:-0}" wrk -t2 -c"$CONNECTIONS" -d"${seconds}s" --timeout 10s --latency \
    -s scripts/profile/walk.lua "$URL"
}

echo "## $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), binary $BIN, $BACKEND, log level $LOG_LEVEL, $CONNECTIONS connections, ${SECONDS_PER_PATH}s per path"
echo "## server CPU per request, wrk -c$CONNECTIONS"
status=0
for path in $PATHS; do
  before=$(cpu_ticks)
  [ "$BACKEND" = postgres ] && pg_before=$(pg_ticks)
  out=$(drive "$path" "$SECONDS_PER_PATH")
  after=$(cpu_ticks)
  pg=""
  if [ "$BACKEND" = postgres ]; then
    pg=$(awk -v t=$(($(pg_ticks) - pg_before)) -v hz="$(getconf CLK_TCK)" \
      -v n="$(awk '/requests in/{print $1}' <<<"$out")" 'BEGIN{printf "  pg_cpu_us_per_request=%.1f", t / hz * 1e6 / n}')
  fi
  requests=$(awk '/requests in/{print $1}' <<<"$out")
  OFFSET[$path]=$(( ${OFFSET[$path]:-0} + requests ))
  bad=$(awk '/Non-2xx/{print $5}' <<<"$out"); bad=${bad:-0}
  errors=$(awk '/Socket errors/{print}' <<<"$out")
  printf '%-9s %10s req/s  p50 %-8s p99 %-8s cpu_us_per_request=%s%s\n' "$path" \
    "$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
    "$(awk '$1=="50%"{print $2}' <<<"$out")" "$(awk '$1=="99%"{print $2}' <<<"$out")" \
    "$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
      'BEGIN{printf "%.1f", t / hz * 1e6 / n}')" "$pg"
  if [ "$bad" != 0 ] || [ -n "$errors" ]; then
    echo "  $path: $bad answers not 2xx ${errors:+($errors)}" >&2; status=1
  fi
  if [ -n "$FLAME" ]; then
    perf record -q -F 499 --call-graph dwarf,16384 -p "$PID" -o "$WORK/perf.data" \
      -- sleep "$SECONDS_PER_PATH" 2>/dev/null &
    perf_pid=$!
    out=$(drive "$path" "$SECONDS_PER_PATH")
    OFFSET[$path]=$(( ${OFFSET[$path]} + $(awk '/requests in/{print $1}' <<<"$out") ))
    wait "$perf_pid" || true
    perf script -i "$WORK/perf.data" 2>/dev/null | inferno-collapse-perf >"$WORK/$path.folded"
    inferno-flamegraph --minwidth 0.5 --title "allot: $path ($(git rev-parse --short HEAD), log $LOG_LEVEL)" \
      <"$WORK/$path.folded" >"$FLAME/$path.svg"
    if [ -n "${KEEP_FOLDED:-}" ]; then cp "$WORK/$path.folded" "$FLAME/"; fi
    python3 scripts/profile/shares.py <"$WORK/$path.folded" | sed 's/^/    /'
  fi
done
exit $status
