#!/usr/bin/env bash
# Side by side with an earlier commit, in one run: the hot paths of training, the
# served pipeline and the server, timed for build OLD and for this checkout in
# alternating rounds (the machine is shared; alternation spreads its noise over both).
#
#   bench/ab.sh OLD_REV [ROUNDS] [SPLIT_DIR] [MODEL_BASE]
#
# OLD_REV is checked out in a detached worktree under target/ab/ and built there
# (its own target/, a cold release build: 5–10 minutes); this checkout is built in
# target/. MODEL_BASE (default models/movielens, from the quickstart) serves both
# builds' in-process benchmark and `eval --pipeline`. Per round and build:
#   ranking throughput   bench_ranking's examples/s (seed configuration, 3 epochs)
#   retrieval epoch      `train retrieval --config configs/retrieval-tfrs.toml`, 2 epochs
#   train ranking        whole process, default configuration (ensemble, AutoRec, head)
#   train ease / ials    whole process, default configurations
#   eval --pipeline      whole process: every test user's served list, scored
#   in-process call      bench_recommend's CPU µs per call
#   loadtest             the server over loopback (synthetic models), req/s and p99
# Prints each round's figures, then the medians and NEW/OLD ratios (< 1: NEW is faster
# for times, > 1: NEW is faster for rates).
set -euo pipefail
cd "$(dirname "$0")/.."
old_rev=${1:?usage: bench/ab.sh OLD_REV [ROUNDS] [SPLIT_DIR] [MODEL_BASE]}
rounds=${2:-3}
split=${3:-../shared/data/ml-100k-split42}
base=${4:-models/movielens}
[ -f "$split/train.tsv" ] || { echo "no $split/train.tsv (SPLIT_DIR)" >&2; exit 2; }
[ -d "$base/ranking" ] || { echo "no models in $base (run: cargo run --release -- quickstart)" >&2; exit 2; }

old_sha=$(git rev-parse --short "$old_rev")
old_dir=target/ab/$old_sha
if [ ! -d "$old_dir" ]; then
  mkdir -p target/ab
  git worktree add --detach "$old_dir" "$old_sha" > /dev/null
fi
build() { # dir
  (cd "$1" && cargo build --release --quiet -p shortlist-cli \
    && cargo build --release --quiet -p shortlist-train --example bench_ranking \
    && cargo build --release --quiet -p shortlist-serve --example bench_recommend --example loadtest)
}
echo "building $old_sha in $old_dir and this checkout ($(git rev-parse --short HEAD)$(git diff --quiet || echo ', with uncommitted changes'))"
build "$old_dir"
build .

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A figures
names=() # in the order first recorded
record() {
  [[ -v "figures[old|$2]" || -v "figures[new|$2]" ]] || names+=("$2")
  figures[$1|$2]+="$3 "
}
cpu_wall() { # out-file, command… → "wall cpu" seconds of the whole process
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$tmp/time" "${@:2}" > "$1" 2>&1
  t1=$(date +%s.%N)
  echo "$(python3 -c "print(round($t1 - $t0, 3))") $(awk '{print $1 + $2}' "$tmp/time")"
}

measure() { # label, dir
  local label=$1 dir=$2 bin=$2/target/release out w c
  local sl=$bin/shortlist
  out=$("$bin/examples/bench_ranking" "$split" 3 2>&1)
  record "$label" "ranking throughput (examples/s)" "$(echo "$out" | sed -n 's/.*throughput[^0-9]*\([0-9][0-9,]*\) examples\/s.*/\1/p' | head -1 | tr -d ,)"
  "$sl" train retrieval -q --config configs/retrieval-tfrs.toml --epochs 2 \
    --train "$split/train.tsv" --test "$split/test.tsv" --out "$tmp/r-$label" > /dev/null
  record "$label" "retrieval epoch (s)" "$(tail -n +2 "$tmp/r-$label/curves.csv" | cut -d, -f9 | sort -n | head -1)"
  rm -rf "$tmp/r-$label"
  for kind in ranking ease ials; do
    read -r w c < <(cpu_wall "$tmp/log" "$sl" train "$kind" -q --train "$split/train.tsv" \
      --test "$split/test.tsv" --out "$tmp/$kind-$label")
    record "$label" "train $kind wall (s)" "$w"
    record "$label" "train $kind CPU (s)" "$c"
    rm -rf "$tmp/$kind-$label"
  done
  read -r w c < <(cpu_wall "$tmp/log" "$sl" eval --pipeline "$base" --test "$split/test.tsv" --train "$split/train.tsv")
  record "$label" "eval --pipeline wall (s)" "$w"
  out=$("$bin/examples/bench_recommend" "$base" 2>&1)
  record "$label" "in-process call CPU (µs)" "$(echo "$out" | sed -n 's/^CPU time per call.*: \([0-9.]*\) µs.*/\1/p' | head -1)"
  out=$("$bin/examples/loadtest" 8 5 1682 2>&1)
  record "$label" "loadtest (req/s)" "$(echo "$out" | sed -n 's/.* \([0-9.]*\) req\/s.*/\1/p' | head -1)"
  record "$label" "loadtest p99 (µs)" "$(echo "$out" | sed -n 's/.* p99 \([0-9]*\) .*/\1/p' | head -1)"
}

for r in $(seq "$rounds"); do
  echo "round $r/$rounds (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ $((r % 2)) = 1 ]; then measure old "$old_dir"; measure new .; else measure new .; measure old "$old_dir"; fi
done

python3 - "$old_sha" << PY
import statistics, sys
figures = {$(for key in "${!figures[@]}"; do printf '"%s": "%s",\n' "$key" "${figures[$key]}"; done)}
names = [$(printf '"%s", ' "${names[@]}")]
print(f"{'median of rounds':34s} {'OLD ' + sys.argv[1]:>14s} {'NEW':>14s} {'NEW/OLD':>8s}   rounds OLD | NEW")
for n in names:
    def vals(label):
        return [float(v) for v in figures.get(f"{label}|{n}", "").split() if v]
    o, w = vals("old"), vals("new")
    if not o or not w:
        print(f"{n:34s} (not parsed: {figures.get('old|' + n)!r} {figures.get('new|' + n)!r})"); continue
    mo, mw = statistics.median(o), statistics.median(w)
    print(f"{n:34s} {mo:14.3f} {mw:14.3f} {mw / mo:8.3f}   {' '.join(map(str, o))} | {' '.join(map(str, w))}")
PY
