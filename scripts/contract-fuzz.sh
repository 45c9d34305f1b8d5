#!/usr/bin/env bash
# The contract fuzzer: schemathesis reads the served /api/v1/openapi.json and sends generated
# requests (schema-valid and schema-violating) to every operation with an admin API key, with
# every check on; any answer that disagrees with the document is a failure and a non-zero exit.
#
#   scripts/contract-fuzz.sh [--postgres] [--max-examples N] [--max-time SECONDS]
#
# FUZZ_PATHS=REGEX limits the run to the operations whose path matches (while working on a few
# routes: FUZZ_PATHS='^/(upload|redeem)$'); CI runs every operation.
#
# Runs the dev build of `allot` ($CARGO_TARGET_DIR/debug/allot, built here) on a fresh SQLite
# data directory, or with --postgres on a PostgreSQL cluster of its own on a temporary
# directory. The per-client rate limits (sign-in, code use) are turned off for the run: one
# fuzzer from one address would otherwise spend them in a second and see 429s on every later
# case (429 is documented, but then the operations behind it go untested).
set -euo pipefail
cd "$(dirname "$0")/.."

backend=sqlite
max_examples="${FUZZ_MAX_EXAMPLES:-25}"
max_time="${FUZZ_MAX_TIME_SECS:-200}"
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) backend=postgres ;;
    --max-examples) max_examples="$2"; shift ;;
    --max-time) max_time="$2"; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

# The pinned schemathesis: installed with pip when missing or of another version (with --user
# where the system's Python refuses system-wide installs); ~/.local/bin is where --user puts it.
export PATH="$HOME/.local/bin:$PATH"
want="$(sed -n 's/^schemathesis==//p' scripts/requirements-fuzz.txt)"
have="$(schemathesis --version 2>/dev/null | awk '{print $NF}' || true)"
if [ "$have" != "$want" ]; then
  echo "schemathesis $want not found (have: ${have:-none}); installing it with pip"
  python3 -m pip install -q -r scripts/requirements-fuzz.txt ||
    python3 -m pip install -q --user --break-system-packages -r scripts/requirements-fuzz.txt
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
if [ -n "${ALLOT_BIN:-}" ]; then
  BIN="$ALLOT_BIN" # a binary built elsewhere (e.g. an older one, to compare)
else
  cargo build -q -p allot
  BIN="$CARGO_TARGET_DIR/debug/allot"
fi

WORK="$(mktemp -d)"
chmod 755 "$WORK"
SERVER_PID=""
PG_BIN=""
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  # FUZZ_LOG_DIR=dir keeps the server's (and PostgreSQL's) log of the run.
  if [ -n "${FUZZ_LOG_DIR:-}" ]; then
    mkdir -p "$FUZZ_LOG_DIR"
    cp "$WORK/server.log" "$FUZZ_LOG_DIR/" 2>/dev/null || true
    cp "$WORK/pg/log" "$FUZZ_LOG_DIR/postgres.log" 2>/dev/null || true
  fi
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [ -n "$PG_BIN" ] && as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ "$backend" = postgres ]; then
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  pg_port="$(free_port)"
  mkdir "$WORK/pg"
  [ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
  as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U allot --auth=trust --no-sync >/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/log" -w \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $WORK/pg -c fsync=off" start >/dev/null
  storage=(--database "postgres://allot@127.0.0.1:$pg_port/postgres")
  export ALLOT_DATA_KEY="$(head -c 32 /dev/urandom | base64)"
  # ... and a token signing secret (both are required with a database URL).
  export ALLOT_JWT_SECRET="$(head -c 48 /dev/urandom | base64)"
else
  storage=(--data-dir "$WORK/data")
fi

api_key=$("$BIN" admin create-api-key "${storage[@]}" --name contract-fuzz --role admin |
  awk 'NR==1{print $NF}')
# A second key for DELETE /api/v1/api-keys/{id} to revoke (contract-fuzz.toml): any id the
# fuzzer picked could be its own key's, and every later case would then be answered 401.
FUZZ_SPARE_API_KEY_ID=$("$BIN" admin create-api-key "${storage[@]}" --name contract-fuzz-spare \
  --role support | awk 'NR==1{print $3}')
export FUZZ_SPARE_API_KEY_ID
port="$(free_port)"
"$BIN" serve --listen "127.0.0.1:$port" --log-level error "${storage[@]}" \
  --login-rate-per-ip-per-min 0 --login-rate-per-email-per-min 0 --code-use-rate-per-sec 0 \
  --account-email-rate-per-hour 0 \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
if ! curl -sf "http://127.0.0.1:$port/health" >/dev/null; then
  echo "allot did not start on port $port" >&2; cat "$WORK/server.log" >&2; exit 1
fi

echo "== contract fuzz ($backend): schemathesis $(schemathesis --version | awk '{print $NF}'), $max_examples examples per operation, at most ${max_time}s"
status=0
schemathesis --config-file scripts/contract-fuzz.toml run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --checks all \
  --header "X-Api-Key: $api_key" \
  --max-examples "$max_examples" \
  --max-time "$max_time" \
  --seed "${FUZZ_SEED:-1}" \
  --workers 2 \
  --request-timeout 20 \
  --warnings off \
  --phases "${FUZZ_PHASES:-examples,coverage,fuzzing,stateful}" \
  ${FUZZ_PATHS:+--include-path-regex "$FUZZ_PATHS"} \
  --no-color || status=$?
if [ "$status" != 0 ] && [ -s "$WORK/server.log" ]; then
  echo "== server log (errors)"; tail -50 "$WORK/server.log"
fi
exit "$status"
