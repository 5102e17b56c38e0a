#!/usr/bin/env bash
# Every fuzz target (fuzz/fuzz_targets, docs/fuzzing.md) for a bounded run:
#
#   scripts/fuzz.sh [RUNS]    RUNS inputs per target (default 200000), and at
#                             most MAGPIE_FUZZ_SECONDS (default 60) each
#
# Exits non-zero on the first crash; libFuzzer leaves the input that crashed
# under fuzz/artifacts/<target>/ (git-ignored) with the command to replay it.
# Each run starts from the committed seeds (fuzz/corpus/<target>/) and
# writes what it discovers to a temporary corpus that is deleted afterwards,
# so the tree never grows. Builds with cargo-fuzz on nightly (installed by
# scripts/services.sh tools) in its own target directory, without a
# sanitizer (the code under test has no unsafe of its own) and with debug
# assertions and overflow checks on.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-200000}
SECONDS_EACH=${MAGPIE_FUZZ_SECONDS:-60}
TARGETS=(client_frame tcp_codec access_log)
export CARGO_TARGET_DIR=${MAGPIE_FUZZ_TARGET_DIR:-/var/tmp/magpie-fuzz-target}
eval "$(scripts/services.sh tools)"

log() { echo "fuzz: $*" >&2; }

FLAGS=(--sanitizer none --debug-assertions --fuzz-dir fuzz)
start=$(date +%s)
cargo +nightly fuzz build "${FLAGS[@]}" >&2
log "built in $(($(date +%s) - start)) s"

work=$(mktemp -d /tmp/magpie-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
for target in "${TARGETS[@]}"; do
  mkdir -p "$work/$target"
  t0=$(date +%s)
  # The first corpus directory receives new inputs; the seeds stay as they are.
  if ! cargo +nightly fuzz run "${FLAGS[@]}" "$target" "$work/$target" "fuzz/corpus/$target" -- \
      -runs="$RUNS" -max_total_time="$SECONDS_EACH" -max_len=4096 -print_final_stats=1 \
      >"$work/$target.log" 2>&1; then
    tail -n 60 "$work/$target.log" >&2
    log "$target FAILED (input under fuzz/artifacts/$target/)"
    exit 1
  fi
  log "$target: ok, $(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$work/$target.log" | grep -Eo '[0-9]+$' || echo '?') runs in $(($(date +%s) - t0)) s"
done
log "all targets passed in $(($(date +%s) - start)) s"
