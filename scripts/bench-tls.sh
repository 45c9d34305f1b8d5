#!/usr/bin/env bash
# TLS beside cleartext, in one run (docs/PERFORMANCE.md, "TLS on the listener"): a release
# build, a fresh server per round on loopback, alternately cleartext and TLS (a certificate from
# `allot admin gen-cert`, trusted by the load tool with --ca-file), each round measuring
# hello-world and IssueCoupon over gRPC, Connect and REST with `allot bench issue` (64 clients;
# Connect and REST on HTTP/1.1 with a connection per client in both modes, gRPC on 8 HTTP/2
# connections), then wrk's hello-world (GET /health, 64 connections) in both modes.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_PHASE="${SECONDS_PER_PHASE:-5}"
ROUNDS="${ROUNDS:-2}"
PORT="${PORT:-18093}"
DATA="$(mktemp -d)"
if [ -n "${ALLOT_BIN:-}" ]; then BIN="$ALLOT_BIN"; else
  BIN="${CARGO_TARGET_DIR:-target}/release/allot"
  cargo build --release --quiet -p allot
fi
if ! command -v wrk >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1 || echo "wrk unavailable; skipping wrk runs"
fi

"$BIN" admin gen-cert --hosts localhost,127.0.0.1 --out-dir "$DATA/tls" >/dev/null
CA="$DATA/tls/cert.pem"
PID=""
start() { # plain|tls
  rm -rf "$DATA/data"
  ALLOT_API_KEY=$("$BIN" admin create-api-key --data-dir "$DATA/data" --name bench --role admin |
    awk 'NR==1{print $NF}')
  export ALLOT_API_KEY
  local flags=()
  if [ "$1" = tls ]; then
    URL="https://127.0.0.1:$PORT"
    flags=(--tls-cert "$DATA/tls/cert.pem" --tls-key "$DATA/tls/key.pem")
  else
    URL="http://127.0.0.1:$PORT"
  fi
  "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA/data" --log-level "${LOG_LEVEL:-info}" \
    --code-use-rate-per-sec 0 --sale-items 0 "${flags[@]}" >/dev/null 2>>"$DATA/server.log" &
  PID=$!
  for _ in $(seq 50); do curl -sf --cacert "$CA" "$URL/health" >/dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}
stop() { kill "$PID"; wait "$PID" || true; }
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT

echo "## machine: $(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "## $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), binary $BIN"
for round in $(seq "$ROUNDS"); do
  for mode in plain tls; do
    echo "## round $round: allot bench issue, $mode"
    start "$mode"
    "$BIN" --ca-file "$CA" bench issue --server "$URL" --seconds "$SECONDS_PER_PHASE" \
      --concurrency 64 --no-progress
    stop
  done
done
if command -v wrk >/dev/null; then
  for round in $(seq "$ROUNDS"); do
    for mode in plain tls; do
      start "$mode"
      out=$(wrk -t2 -c64 -d"${SECONDS_PER_PHASE}s" --latency "$URL/health")
      printf 'round %s wrk hello %-5s c=64 %s req/s  p50 %s  p99 %s\n' "$round" "$mode" \
        "$(awk '/Requests\/sec/{print $2}' <<<"$out")" "$(awk '$1=="50%"{print $2}' <<<"$out")" \
        "$(awk '$1=="99%"{print $2}' <<<"$out")"
      stop
    done
  done
fi
