#!/usr/bin/env bash
# What the console's browser tests need besides Rust: Debian's headless Chromium and its
# chromedriver (installed with apt-get when missing), and axe-core, the accessibility engine
# the tests inject into every page, fetched from the npm registry at a pinned version and
# checked against the registry's recorded sha512 before it is used. Run by scripts/test.sh;
# run it alone before `cargo test -p allot --test api console::`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "chromium or chromedriver not found; installing them with apt-get (the console's browser tests)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# Pinned: a new axe-core version can add rules, so it is taken on purpose, not by chance.
axe_version="4.14.1"
axe_integrity="sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
axe_js="target/test-assets/axe-core-${axe_version}.min.js"
if [ ! -s "$axe_js" ]; then
  echo "fetching axe-core ${axe_version} from the npm registry"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  curl -fsSL --retry 3 -o "$tmp/axe.tgz" "https://registry.npmjs.org/axe-core/-/axe-core-${axe_version}.tgz"
  actual="sha512-$(python3 -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1],"rb").read()).digest()).decode())' "$tmp/axe.tgz")"
  if [ "$actual" != "$axe_integrity" ]; then
    echo "axe-core ${axe_version}: integrity $actual, expected $axe_integrity; not used" >&2
    exit 1
  fi
  tar -xzf "$tmp/axe.tgz" -C "$tmp" package/axe.min.js
  mkdir -p "$(dirname "$axe_js")"
  mv "$tmp/package/axe.min.js" "$axe_js"
fi
# The path the tests read unless ALLOT_AXE_JS names another (crates/allot/tests/api/console.rs).
ln -sf "axe-core-${axe_version}.min.js" target/test-assets/axe.min.js
