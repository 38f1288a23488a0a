#!/usr/bin/env bash
# Runs every cargo-fuzz target (nightly toolchain, `cargo install cargo-fuzz`) for
# RUNS executions or SECONDS, whichever ends first, with a 512 MB allocation
# limit (a larger single allocation is a finding) and a 10 s per-input timeout.
# Findings land in fuzz/artifacts/<target>/: fix the bug, then copy the input to
# fuzz/regressions/<target>/, where crates/serve/tests/fuzz_replay.rs replays it
# on stable in every test run.
# Usage: scripts/reliability/fuzz.sh [runs=1000000] [seconds=0 (no limit)] [targets…]
set -euo pipefail
cd "$(dirname "$0")/../../fuzz"
RUNS="${1:-1000000}"; SECS="${2:-0}"; shift $(( $# > 2 ? 2 : $# ))
TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=(load_tsv load_schema load_recbole http_body model_loader)
mkdir -p logs
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  start=$(date +%s)
  cargo +nightly fuzz run -O -s none "$t" "corpus/$t" "seeds/$t" -- \
    -runs="$RUNS" -max_total_time="$SECS" -malloc_limit_mb=512 -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1 > "logs/$t.log" 2>&1 || echo "$t: FINDING (see fuzz/logs/$t.log and fuzz/artifacts/$t/)"
  echo "$t: $(grep -o 'stat::number_of_executed_units: [0-9]*' "logs/$t.log" | tail -1), $(( $(date +%s) - start )) s, corpus $(ls "corpus/$t" | wc -l) inputs"
done
