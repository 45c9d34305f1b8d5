#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests that start real servers.
# Works on a fresh machine with a Rust toolchain; installs anything else it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets "$@"
