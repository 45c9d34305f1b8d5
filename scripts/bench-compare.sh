#!/usr/bin/env bash
# Two builds side by side on a noisy machine (issue 21): the base commit (A) and the working
# tree (B), each built once in release, then a benchmark script run with each binary in turn,
# A B A B ..., ROUNDS times, in one run. Every figure the script prints is then paired round by
# round and printed with its B/A ratio's min / median / max (scripts/bench_compare.py): a
# change that moves a figure moves every pair; the machine's mood moves both of a pair alike.
#
#   scripts/bench-compare.sh BASE                    # e.g. HEAD~1, main, a1b2c3d
#   BENCH=scripts/bench-orders.sh ROUNDS=5 scripts/bench-compare.sh BASE
#   A_BIN=/path/a B_BIN=/path/b BENCH=scripts/profile.sh scripts/bench-compare.sh   # two built
#                            binaries, no build (BASE is then only a label)
#   A_BIN=x B_BIN=x A_ENV=LOG_LEVEL=warn B_ENV=LOG_LEVEL=info BENCH=scripts/profile.sh \
#     scripts/bench-compare.sh                     # one binary, two settings
#
# Settings (environment):
#   BENCH=scripts/bench.sh   any benchmark script that measures $ALLOT_BIN (they all do)
#   ROUNDS=3                 pairs of runs
#   OUT=                     where the runs' outputs go (default: a new directory in /tmp)
#   SECONDS_PER_PHASE, CLIENTS, ...: passed on to the benchmark script
# The working tree is measured as it is, uncommitted changes included.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${A_BIN:-}" ] && [ -n "${B_BIN:-}" ]; then BASE="${1:-$A_BIN}"; else
  BASE="${1:?usage: scripts/bench-compare.sh BASE (a commit, branch or tag), or A_BIN and B_BIN}"
fi
BENCH="${BENCH:-scripts/bench.sh}"
ROUNDS="${ROUNDS:-3}"
OUT="${OUT:-$(mktemp -d /tmp/allot-compare.XXXXXX)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p "$OUT/A" "$OUT/B"

if [ -n "${A_BIN:-}" ] && [ -n "${B_BIN:-}" ]; then
  echo "## compare: A = $A_BIN ${A_ENV:-}, B = $B_BIN ${B_ENV:-}, $BENCH x $ROUNDS rounds, into $OUT"
  cp "$A_BIN" "$OUT/A/allot"
  cp "$B_BIN" "$OUT/B/allot"
else
  base_commit=$(git rev-parse --verify "$BASE^{commit}")
  echo "## compare: A = $BASE ($(git rev-parse --short "$base_commit")), B = the working tree of $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' + changes'), $BENCH x $ROUNDS rounds, into $OUT"

  # The working tree first: its build is the one most likely to fail.
  cargo build --release --quiet -p allot
  cp "$CARGO_TARGET_DIR/release/allot" "$OUT/B/allot"

  # The base in a worktree of its own, built with the same target directory (shared
  # dependencies), then removed.
  tree="$OUT/base-tree"
  git worktree add --quiet --detach "$tree" "$base_commit"
  trap 'git worktree remove --force "$tree" 2>/dev/null || true' EXIT
  (cd "$tree" && cargo build --release --quiet -p allot)
  cp "$CARGO_TARGET_DIR/release/allot" "$OUT/A/allot"
  git worktree remove --force "$tree"
fi

for round in $(seq "$ROUNDS"); do
  for side in A B; do
    echo "## round $round: $side"
    side_env="${side}_ENV"
    # shellcheck disable=SC2086 # the settings are words on purpose
    env ${!side_env:-} ALLOT_BIN="$OUT/$side/allot" "$BENCH" >"$OUT/$side/run-$round.txt" 2>"$OUT/$side/run-$round.err" || {
      echo "the benchmark failed with $side in round $round: $OUT/$side/run-$round.err" >&2
      tail -5 "$OUT/$side/run-$round.err" >&2
      exit 1
    }
  done
done
python3 scripts/bench_compare.py "$OUT" "$ROUNDS"
