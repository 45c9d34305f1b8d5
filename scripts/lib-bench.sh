# Shared by the benchmark scripts: a PostgreSQL cluster of its own on a temporary directory
# and a free port (as the postgres user when run as root: initdb refuses root), and helpers to
# start and stop allot servers. Sets DB (its URL) and psql_q. Source it after setting BIN.
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
# The servers of one run share the database, so they share one data key (a fresh one per run).
ALLOT_DATA_KEY="${ALLOT_DATA_KEY:-$(head -c 32 /dev/urandom | base64)}"
export ALLOT_DATA_KEY
# ... and one token signing secret (required with --database).
ALLOT_JWT_SECRET="${ALLOT_JWT_SECRET:-$(head -c 48 /dev/urandom | base64)}"
export ALLOT_JWT_SECRET

# Every call but the probes needs a credential: before each start, an admin API key in the
# storage the server will open (--data-dir or --database among the flags), exported as
# ALLOT_API_KEY for the load tools (every key made stays valid).
make_api_key() { # flags of allot serve...
  local storage=()
  while [ $# -gt 0 ]; do
    case "$1" in --data-dir|--database) storage=("$1" "$2"); shift ;; esac
    shift
  done
  ALLOT_API_KEY=$("$BIN" admin create-api-key "${storage[@]}" --name bench --role admin |
    awk 'NR==1{print $NF}')
  export ALLOT_API_KEY
}

# LOG_LEVEL (default info, a server's default: a line per request, to $WORK/server-PORT.log).
start_server() { # port, extra flags...
  local port=$1; shift
  make_api_key "$@"
  # The load comes from one address: no per-client code-use limit.
  "$BIN" serve --listen "127.0.0.1:$port" --log-level "${LOG_LEVEL:-info}" --sale-items 0 \
    --code-use-rate-per-sec 0 "$@" >/dev/null 2>>"$WORK/server-$port.log" &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && return; sleep 0.1; done
  echo "allot on port $port did not start:" >&2; tail -5 "$WORK/server-$port.log" >&2; exit 1
}
stop_servers() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
