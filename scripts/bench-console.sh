#!/usr/bin/env bash
# Console page timings (issue 15, docs/PERFORMANCE.md): a release server holding 1,000,000
# discount codes and 100,000 orders, signed in to as an admin with the console's cookie, each
# console page asked for REQUESTS_PER_PAGE times in turn; prints the time to the first byte
# of each page (curl's time_starttransfer: the server's work, on loopback) as median and max,
# with the page's size. The pages are those the overview's main navigation links to, the
# overview's live figures, a campaign's page and an order's page. On SQLite and on
# PostgreSQL (BACKENDS="sqlite postgres", the default).
set -euo pipefail
cd "$(dirname "$0")/.."
CODES="${CODES:-1000000}"
ORDERS="${ORDERS:-100000}"
REQUESTS_PER_PAGE="${REQUESTS_PER_PAGE:-20}"
BACKENDS="${BACKENDS:-sqlite postgres}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# ALLOT_BIN: measure that binary instead of building this tree (builds side by side, one run).
if [ -n "${ALLOT_BIN:-}" ]; then BIN="$ALLOT_BIN"; else
  BIN="$CARGO_TARGET_DIR/release/allot"
  cargo build --release --quiet -p allot
fi

# shellcheck source=lib-bench.sh
source scripts/lib-bench.sh

PORT=18301
BASE="http://127.0.0.1:$PORT"
ADMIN_EMAIL="bench-admin@example.com"
ADMIN_PASSWORD="bench console password $RANDOM$RANDOM"
JAR="$WORK/cookies"

echo "## machine: $(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
echo "## $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), binary $BIN"

api() { # method, path, [json body]
  curl -sf -X "$1" -H "Authorization: Bearer $ALLOT_API_KEY" -H 'content-type: application/json' \
    ${3:+-d "$3"} "$BASE$2"
}

count_orders() { # storage flags...
  if [ "$1" = --database ]; then psql_q "SELECT count(*) FROM orders"
  else sqlite3 -readonly "$2/allot.db" "SELECT count(*) FROM orders"; fi
}

seed() { # storage flags...
  local batches=$(((CODES + 1999) / 2000))
  local t0=$SECONDS
  # Four calls in flight: the writer batches them, and a call is 2,000 codes at most.
  seq "$batches" | xargs -P 4 -I{} curl -sf -o /dev/null -X POST \
    -H "Authorization: Bearer $ALLOT_API_KEY" -H 'content-type: application/json' \
    -d '{"count":2000,"length":8}' "$BASE/api/v1/discount-codes/batches"
  echo "## stored $((batches * 2000)) discount codes in $((SECONDS - t0)) s"
  t0=$SECONDS
  while [ "$(count_orders "$@")" -lt "$ORDERS" ]; do
    # The tool reads every order back to check them; a slow read there fails the tool, not
    # the orders it stored, which are what this run needs.
    "$BIN" load orders --server "$BASE" --concurrency 64 --seconds 20 --hello-seconds 0 \
      --no-progress >/dev/null || echo "## (allot load orders failed its check; going on)"
  done
  echo "## stored $(count_orders "$@") orders in $((SECONDS - t0)) s"
  # A campaign for the campaign page to show.
  CAMPAIGN_ID="$(api POST /api/v1/campaigns \
    '{"name":"bench campaign","start_time":"2020-01-01T00:00:00Z","total_coupons":1000}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
}

# Signs in through the sign-in form as a browser would: its hidden fields (the CSRF token)
# sent back with the credentials, the session cookie kept in $JAR.
sign_in() {
  rm -f "$JAR"
  local page fields action
  page="$(curl -sf -c "$JAR" -b "$JAR" "$BASE/")"
  read -r action fields < <(python3 -c '
import html.parser, sys, urllib.parse
class Form(html.parser.HTMLParser):
    action, fields, inside = "/", [], False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == "sign-in"
            if self.inside:
                self.action = a.get("action") or "/"
        elif tag == "input" and self.inside and a.get("type") == "hidden":
            self.fields.append((a.get("name", ""), a.get("value", "")))
    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
f = Form()
f.feed(sys.stdin.read())
print(f.action, urllib.parse.urlencode(f.fields))
' <<<"$page")
  curl -sf -o /dev/null -c "$JAR" -b "$JAR" -H "Origin: $BASE" \
    --data-urlencode "email=$ADMIN_EMAIL" --data-urlencode "password=$ADMIN_PASSWORD" \
    ${fields:+--data "$fields"} "$BASE$action"
  grep -q . "$JAR" || { echo "sign-in set no cookie" >&2; exit 1; }
}

# The console pages to time: the navigation's, and one detail page of each kind found there.
pages() {
  local overview
  overview="$(curl -sf -b "$JAR" "$BASE/console")"
  python3 - "$overview" <<'EOF'
import re, sys
html = sys.argv[1]
nav = re.search(r'<nav[^>]*aria-label="Main"[^>]*>(.*?)</nav>', html, re.S)
links = re.findall(r'href="(/console[^"#?]*)"', nav.group(1) if nav else html)
seen = []
for l in ["/console"] + links:
    if l not in seen:
        seen.append(l)
print("\n".join(seen))
EOF
  # The overview's live figures, which every open overview asks for again and again.
  echo "/console/overview.json"
  local order
  order="$(api GET '/api/v1/orders?limit=1' | python3 -c 'import json,sys; print(json.load(sys.stdin)["orders"][0]["id"])')"
  echo "/console/orders/$order"
  # Filtered: a status no stored order has yet, and a customer with none, so the page walks
  # the index to its end rather than stopping at the first 50.
  echo "/console/orders?status=returned"
  echo "/console/orders?customer=nobody"
  echo "/console/campaigns/$CAMPAIGN_ID"
}

time_pages() { # label
  printf '\n### %s: %s codes, %s orders, %s requests per page\n\n' "$1" "$CODES" "$ORDERS" "$REQUESTS_PER_PAGE"
  echo "| page | median | max | size |"
  echo "|---|---|---|---|"
  local path
  while read -r path; do
    local status
    status="$(curl -s -o /dev/null -w '%{http_code}' -b "$JAR" "$BASE$path")"
    if [ "$status" != 200 ]; then
      echo "| \`$path\` | answered $status | | |"
      continue
    fi
    for _ in $(seq "$REQUESTS_PER_PAGE"); do
      curl -s -o /dev/null -b "$JAR" -w '%{time_starttransfer} %{size_download}\n' "$BASE$path"
    done | sort -n | awk -v p="$path" '
      { t[NR] = $1 * 1000; size = $2 }
      END { m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2;
            printf "| `%s` | %.1f ms | %.1f ms | %.0f KB |\n", p, m, t[NR], size / 1024 }'
  done < <(pages)
}

run() { # label, storage flags...
  local label=$1; shift
  ALLOT_NEW_USER_PASSWORD="$ADMIN_PASSWORD" "$BIN" admin create-user "$@" \
    --email "$ADMIN_EMAIL" --role admin >/dev/null
  start_server "$PORT" "$@"
  seed "$@"
  sign_in
  time_pages "$label"
  stop_servers
}

for backend in $BACKENDS; do
  case "$backend" in
    sqlite) run "SQLite" --data-dir "$WORK/sqlite-$RANDOM" ;;
    postgres) run "PostgreSQL" --database "$DB" ;;
    *) echo "unknown backend $backend (sqlite or postgres)" >&2; exit 2 ;;
  esac
done
