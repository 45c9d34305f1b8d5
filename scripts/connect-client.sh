#!/usr/bin/env bash
# The official Connect client for crates/allot/tests/api/tls.rs: connect-es and its code
# generator, at the versions pinned in scripts/connect-client/package-lock.json (npm ci checks
# each package against the lock's sha512), installed into target/connect-client (outside the
# crate), and the campaign contract's code generated from proto/coupon.proto with buf and
# protoc-gen-es. Run by scripts/test.sh; run it alone before `cargo test -p allot --test api
# tls::`. Needs node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

src=scripts/connect-client
dir=target/connect-client
mkdir -p "$dir"
# Install again only when the pinned set changed.
if ! cmp -s "$src/package-lock.json" "$dir/package-lock.json" || [ ! -d "$dir/node_modules" ]; then
  echo "installing connect-es (pinned) into $dir"
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
cp "$src/buf.gen.yaml" "$src/issue.mjs" "$dir/"
rm -rf "$dir/gen"
(cd "$dir" && PATH="$PWD/node_modules/.bin:$PATH" buf generate ../../proto --path ../../proto/coupon.proto)
test -s "$dir/gen/coupon_pb.js"
