#!/usr/bin/env bash
# Reproduces the figures of docs/PERFORMANCE.md on this machine: a release build, a fresh
# server per benchmark on loopback, Allot's own verifying load tools, and wrk (a C load
# generator, installed with apt-get when missing) for the server's ceiling with a cheap client.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_PHASE="${SECONDS_PER_PHASE:-5}"
PORT="${PORT:-18090}"
URL="http://127.0.0.1:$PORT"
DATA="$(mktemp -d)"
# ALLOT_BIN: measure that binary instead of building this tree (builds side by side, one run).
# LOG_LEVEL: the server's log level, `info` (every request logs a line, to a file here) as a
# server runs by default; `warn` measures without the request log.
# BACKEND=postgres: the same runs on a PostgreSQL cluster of the script's own (lib-bench.sh),
# a fresh database per server.
BACKEND="${BACKEND:-sqlite}"
if [ -n "${ALLOT_BIN:-}" ]; then BIN="$ALLOT_BIN"; else
  BIN="${CARGO_TARGET_DIR:-target}/release/allot"
  cargo build --release --quiet
fi

if ! command -v wrk >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1 || echo "wrk unavailable; skipping wrk runs"
fi

PID=""
STORAGE=(--data-dir "$DATA/data")
if [ "$BACKEND" = postgres ]; then
  # shellcheck source=lib-bench.sh
  source scripts/lib-bench.sh # a cluster, DB, and a trap (replaced below) that removes it
  STORAGE=(--database "$DB")
fi
start() {
  rm -rf "$DATA/data"
  if [ "$BACKEND" = postgres ]; then
    "$PG_BIN/dropdb" -h 127.0.0.1 -p "$PG_PORT" -U allot allot
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U allot allot
  fi
  # Every call but the probes needs a credential: an admin API key, made before the server
  # starts (SQLite's data directory is locked while a server runs); the load tools read it
  # from ALLOT_API_KEY, curl and wrk send it as a header.
  ALLOT_API_KEY=$("$BIN" admin create-api-key "${STORAGE[@]}" --name bench --role admin |
    awk 'NR==1{print $NF}')
  export ALLOT_API_KEY
  AUTH="authorization: Bearer $ALLOT_API_KEY"
  "$BIN" serve --listen "127.0.0.1:$PORT" "${STORAGE[@]}" --log-level "${LOG_LEVEL:-info}" \
    --code-use-rate-per-sec 0 >/dev/null 2>>"$DATA/server.log" &
  PID=$!
  for _ in $(seq 50); do curl -sf "$URL/health" >/dev/null && return; sleep 0.1; done
  echo "server did not start:" >&2; tail -5 "$DATA/server.log" >&2; exit 1
}
stop() { kill "$PID"; wait "$PID" || true; }
if [ "$BACKEND" = postgres ]; then
  trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"; cleanup' EXIT
else
  trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
fi

echo "## machine: $(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), $(rustc --version)"
echo "## $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), binary $BIN, $BACKEND"

echo "## allot bench discount"
start; "$BIN" bench discount --server "$URL" --seconds "$SECONDS_PER_PHASE" --no-progress; stop

echo "## allot bench issue"
start; "$BIN" bench issue --server "$URL" --seconds "$SECONDS_PER_PHASE" --no-progress; stop

echo "## allot load coupons"
start; "$BIN" load coupons --server "$URL" --coupons 50000 --hello-seconds "$SECONDS_PER_PHASE" --no-progress; stop

echo "## allot load flash-sale (10,000 items, 20,000 shoppers, 256 connections)"
start; "$BIN" load flash-sale --server "$URL" --no-progress; stop

if command -v wrk >/dev/null; then
  echo "## wrk: hello-world and IssueCoupon (Connect JSON and REST), fresh server"
  start
  id=$(curl -s -H 'Content-Type: application/json' -H "$AUTH" \
    -d '{"name":"wrk","startTime":"2020-01-01T00:00:00Z","totalCoupons":"10000000"}' \
    "$URL/couponpb.CouponService/CreateCampaign" | sed 's/.*"campaignId":"\([0-9]*\)".*/\1/')
  printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer %s"\nwrk.body = %s\n' \
    "$ALLOT_API_KEY" "'{\"campaignId\":\"$id\"}'" > "$DATA/connect.lua"
  printf 'wrk.method = "POST"\nwrk.headers["Authorization"] = "Bearer %s"\n' "$ALLOT_API_KEY" > "$DATA/rest.lua"
  for c in 64 256; do
    for run in "hello|$URL/health|" "connect|$URL/couponpb.CouponService/IssueCoupon|$DATA/connect.lua" \
               "rest|$URL/api/v1/campaigns/$id/coupons|$DATA/rest.lua"; do
      IFS='|' read -r name target script <<<"$run"
      out=$(wrk -t2 -c"$c" -d"${SECONDS_PER_PHASE}s" --latency ${script:+-s "$script"} "$target")
      printf 'wrk %-8s c=%-4s %s req/s  p50 %s  p99 %s  non-2xx %s\n' "$name" "$c" \
        "$(awk '/Requests\/sec/{print $2}' <<<"$out")" "$(awk '$1=="50%"{print $2}' <<<"$out")" \
        "$(awk '$1=="99%"{print $2}' <<<"$out")" "$(awk '/Non-2xx/{print $5}' <<<"$out" | grep . || echo 0)"
    done
  done
  echo "issued in all: $(curl -s -H "$AUTH" "$URL/api/v1/campaigns/$id" | sed 's/.*"issued":\([0-9]*\).*/\1/')"
  stop
fi
