#!/usr/bin/env bash
# kill -9 at random moments during `data split`, `train ranking` and `data synth`
# (each replacing an earlier output): every output must be complete and
# consistent, or absent — never a mix. Usage: scripts/reliability/kill9.sh [kills=20]
source "$(dirname "$0")/common.sh"
N="${1:-20}"
build
W="$RELY_WORK/kill9"; rm -rf "$W"; mkdir -p "$W"
rand() { python3 -c "import random; print(f'{random.uniform(0, $1):.3f}')"; }
# Runs "$@" in the background, kills it with SIGKILL after a random moment within
# its usual duration ($1 seconds); returns whether it had finished on its own.
kill_at_random() {
  local dur="$1"; shift
  "$@" > /dev/null 2>&1 &
  local pid=$!
  sleep "$(rand "$dur")"
  if kill -9 "$pid" 2> /dev/null; then wait "$pid" 2> /dev/null || true; echo killed; else wait "$pid" 2> /dev/null || true; echo finished; fi
}
machine_load

# --- data split over an existing split, 1M interactions.
"$BIN" -q data synth --users 20000 --items 5000 --interactions 1000000 --out "$W/log" > /dev/null
"$BIN" -q data split "$W/log" --seed 1 --out "$W/split" > /dev/null
t0=$(date +%s.%N); "$BIN" -q data split "$W/log" --seed 2 --out "$W/split" > /dev/null; t1=$(date +%s.%N)
dur=$(python3 -c "print($t1 - $t0)")
echo "data split of 1M interactions takes ${dur}s; killing $N times at random moments"
check_split() {
  python3 - "$W/split" << 'PY'
import hashlib, json, os, sys
d = sys.argv[1]
if not os.path.exists(d):
    print("absent"); sys.exit()
names = sorted(n for n in os.listdir(d))
if names != ["split.json", "test.tsv", "train.tsv"]:
    print("INCONSISTENT files", names); sys.exit()
rec = json.load(open(os.path.join(d, "split.json")))
for part in ("train", "test"):
    b = open(os.path.join(d, rec[part]["file"]), "rb").read()
    if hashlib.sha256(b).hexdigest() != rec[part]["sha256"] or b.count(b"\n") - 1 != rec[part]["rows"]:
        print("INCONSISTENT", part); sys.exit()
if rec["train"]["rows"] + rec["test"]["rows"] != 1000000:
    print("INCONSISTENT rows"); sys.exit()
print("complete seed", rec["method"]["seed"])
PY
}
declare -A seen=()
for i in $(seq 1 "$N"); do
  seed=$((i + 10))
  how=$(kill_at_random "$dur" "$BIN" -q data split "$W/log" --seed "$seed" --out "$W/split")
  r=$(check_split)
  seen["$r"]=$(( ${seen["$r"]:-0} + 1 ))
  echo "  split #$i ($how): $r"
done
"$BIN" -q data split "$W/log" --seed 99 --out "$W/split" 2> "$W/sweep.txt" > /dev/null
echo "after a clean run: $(check_split); leftovers next to it: $(ls -A "$W" | grep -c partial || true); $(grep -c note "$W/sweep.txt" || true) sweep note(s)"

# --- train ranking over an existing model directory (ML-100k split).
"$BIN" -q data split ml-100k --seed 42 --out "$W/ml" > /dev/null
train=(train ranking --train "$W/ml/train.tsv" --test "$W/ml/test.tsv" --config "$ROOT/configs/ranking-tfrs.toml" --epochs 2)
"$BIN" -q "${train[@]}" --out "$W/model" > /dev/null
t0=$(date +%s.%N); "$BIN" -q "${train[@]}" --out "$W/model" > /dev/null; t1=$(date +%s.%N)
dur=$(python3 -c "print($t1 - $t0)")
echo "train ranking takes ${dur}s; killing $N times at random moments"
for i in $(seq 1 "$N"); do
  how=$(kill_at_random "$dur" "$BIN" -q "${train[@]}" --seed "$i" --out "$W/model")
  if [ ! -e "$W/model" ]; then r=absent
  elif "$BIN" -q eval --model "$W/model" --test "$W/ml/test.tsv" --json > /dev/null 2> "$W/eval.err"; then r="complete (loads, checksums verified)"
  else r="INCONSISTENT: $(head -c 200 "$W/eval.err")"; fi
  echo "  train #$i ($how): $r"
done

# --- data synth (interactions, items, users, schema) over an existing output.
"$BIN" -q data synth --users 20000 --items 5000 --interactions 1000000 --out "$W/synth" > /dev/null
t0=$(date +%s.%N); "$BIN" -q data synth --users 20000 --items 5000 --interactions 1000000 --seed 2 --out "$W/synth" > /dev/null; t1=$(date +%s.%N)
dur=$(python3 -c "print($t1 - $t0)")
echo "data synth takes ${dur}s; killing $N times at random moments"
for i in $(seq 1 "$N"); do
  how=$(kill_at_random "$dur" "$BIN" -q data synth --users 20000 --items 5000 --interactions 1000000 --seed "$((i + 10))" --out "$W/synth")
  if [ ! -e "$W/synth" ]; then r=absent
  else
    n=$("$BIN" -q data info "$W/synth" --json 2> "$W/info.err" | python3 -c "import json,sys; print(json.load(sys.stdin)['interactions'])" 2> /dev/null || echo "?")
    if [ "$n" = 1000000 ]; then r="complete (1,000,000 interactions, items and users load)"; else r="INCONSISTENT: $n $(head -c 200 "$W/info.err")"; fi
  fi
  echo "  synth #$i ($how): $r"
done
echo "leftover partial directories after the runs: $(find "$W" -maxdepth 1 -name '.*partial*' | wc -l) (swept by the next writer of the same target)"
