#!/usr/bin/env bash
# The soak (issue 20): a mixed load at half of the measured peak for DURATION, sampled every
# 10 s by `allot load soak` into a CSV, drawn as a PNG chart in docs/reliability/.
#
#   scripts/soak.sh                 # SQLite, one instance
#   scripts/soak.sh --postgres      # PostgreSQL (a cluster of its own) and 3 instances
#
# Settings (environment):
#   DURATION=30m     length of the soak (s, m or h); the flatness windows are each a sixth of it
#   RATE=            operations per second; empty: a closed-loop ramp (16, 64, 256 clients,
#                    RAMP_SECS each) measures the peak and the soak runs at half of it
#   RAMP_SECS=10     seconds of each ramp step
#   SALE_ITEMS=100000 items of each hourly flash sale
#   OUT=docs/reliability/soak-<backend>   where the .csv, .txt (the tool's output) and .png go
#   ALLOT_BIN=       use that binary instead of building this tree (release)
# Needs python3 with matplotlib for the chart (installed with pip when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
POSTGRES=0
[ "${1:-}" = "--postgres" ] && POSTGRES=1
DURATION="${DURATION:-30m}"
RATE="${RATE:-}"
RAMP_SECS="${RAMP_SECS:-10}"
SALE_ITEMS="${SALE_ITEMS:-100000}"
BACKEND=$([ "$POSTGRES" = 1 ] && echo postgres || echo sqlite)
OUT="${OUT:-docs/reliability/soak-$BACKEND}"
mkdir -p "$(dirname "$OUT")"

# The chart needs matplotlib: check first, not after the run.
if ! python3 -c 'import matplotlib' 2>/dev/null; then
  echo "## installing matplotlib for the chart (pip)"
  python3 -m pip install --quiet matplotlib 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages matplotlib
  python3 -c 'import matplotlib' || { echo "matplotlib is needed for the chart" >&2; exit 1; }
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -n "${ALLOT_BIN:-}" ]; then BIN="$ALLOT_BIN"; else
  BIN="$CARGO_TARGET_DIR/release/allot"
  cargo build --release --quiet -p allot
fi

if [ "$POSTGRES" = 1 ]; then
  # A PostgreSQL cluster of its own, make_api_key, PIDS and the cleanup.
  # shellcheck source=lib-bench.sh
  source scripts/lib-bench.sh
else
  WORK="$(mktemp -d)"
  PIDS=()
  cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
  }
  trap cleanup EXIT
  make_api_key() { # allot serve flags with --data-dir
    ALLOT_API_KEY=$("$BIN" admin create-api-key --data-dir "$2" --name soak --role admin |
      awk 'NR==1{print $NF}')
    export ALLOT_API_KEY
  }
fi

start() { # port, storage flags...
  local port=$1; shift
  make_api_key "$@"
  # One client address sends everything: no per-client code-use limit.
  "$BIN" serve --listen "127.0.0.1:$port" --log-level warn --sale-items "$SALE_ITEMS" \
    --code-use-rate-per-sec 0 "$@" >"$WORK/allot-$port.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && return; sleep 0.2; done
  echo "allot on port $port did not start:" >&2; cat "$WORK/allot-$port.log" >&2; exit 1
}

if [ "$POSTGRES" = 1 ]; then
  start 18201 --database "$DB"   # applies the migrations first
  start 18202 --database "$DB"
  start 18203 --database "$DB"
  URLS="http://127.0.0.1:18201,http://127.0.0.1:18202,http://127.0.0.1:18203"
  STORAGE=(--database-url "$DB")
else
  mkdir "$WORK/sqlite"
  start 18201 --data-dir "$WORK/sqlite"
  URLS="http://127.0.0.1:18201"
  STORAGE=(--data-dir "$WORK/sqlite")
fi

{
  echo "## machine: $(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
  echo "## $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $BACKEND, $(echo "$URLS" | tr ',' '\n' | wc -l) instance(s), DURATION=$DURATION RATE=${RATE:-half of the peak} SALE_ITEMS=$SALE_ITEMS"
} | tee "$OUT.txt"
status=0
"$BIN" load soak --url "$URLS" --duration "$DURATION" --ramp-secs "$RAMP_SECS" \
  --pid "$(IFS=,; echo "${PIDS[*]}")" "${STORAGE[@]}" --csv "$OUT.csv" \
  ${RATE:+--rate "$RATE"} 2>&1 | tee -a "$OUT.txt" || status=$?

python3 - "$OUT.csv" "$OUT.png" "$BACKEND, $(echo "$URLS" | tr ',' '\n' | wc -l) instance(s), commit $(git rev-parse --short HEAD)" <<'PY'
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

src, dst, title = sys.argv[1:4]
rows = list(csv.DictReader(open(src)))
if not rows:
    sys.exit("no samples in " + src)
t = [float(r["t_s"]) / 60 for r in rows]
col = lambda k, scale=1.0: [float(r[k]) * scale for r in rows]
ops = [k[: -len("_p99_ms")] for k in rows[0] if k.endswith("_p99_ms") and k != "all_p99_ms"]
fig, ax = plt.subplots(4, 1, figsize=(11, 13), sharex=True)
for op in ops:
    ax[0].plot(t, col(op + "_p99_ms"), lw=0.8, label=op)
ax[0].plot(t, col("all_p99_ms"), lw=2, color="black", label="all")
ax[0].set_ylabel("p99 per 10 s (ms)")
ax[0].set_yscale("log")
ax[0].legend(fontsize=7, ncol=5)
ax[1].plot(t, col("throughput"), label="answered/s")
ax[1].plot(t, col("rate_target"), ls="--", label="target rate")
ax[1].plot(t, col("failures"), color="red", label="failures (5xx, unexpected 4xx, none)")
ax[1].set_ylabel("per second")
ax[1].legend(fontsize=8)
ax[2].plot(t, col("rss_kib", 1 / 1024), color="tab:purple", label="RSS (MiB)")
ax[2].set_ylabel("RSS, all instances (MiB)")
ax[2].set_ylim(0, max(col("rss_kib", 1 / 1024)) * 1.15)
a2 = ax[2].twinx()
a2.plot(t, col("open_files"), color="tab:gray", lw=0.8, label="open files")
a2.set_ylabel("open files")
ax[2].legend(loc="upper left", fontsize=8)
a2.legend(loc="upper right", fontsize=8)
ax[3].plot(t, col("db_bytes", 1 / 2**20), label="database (MiB)")
ax[3].plot(t, col("wal_bytes", 1 / 2**20), label="WAL (MiB)")
ax[3].set_ylabel("MiB")
ax[3].set_xlabel("minutes")
ax[3].legend(fontsize=8)
# The flatness windows: the second and the last sixth of the run.
end = max(t)
for a in ax:
    a.axvspan(end / 6, end / 3, color="green", alpha=0.07)
    a.axvspan(end * 5 / 6, end, color="green", alpha=0.07)
fig.suptitle("allot load soak: " + title)
fig.tight_layout()
fig.savefig(dst, dpi=90)
print("chart:", dst)
PY
exit "$status"
