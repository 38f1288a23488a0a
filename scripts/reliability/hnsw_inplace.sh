#!/usr/bin/env bash
# The served HNSW index file rewritten in place (cp / rsync --inplace): truncated,
# then overwritten with other bytes, while a request loop runs. Target: the server
# keeps answering (zero failed requests, no crash). The HNSW index's loading is
# another change's (crates/index); this script checks it from the outside.
# Usage: scripts/reliability/hnsw_inplace.sh
source "$(dirname "$0")/common.sh"
build
W="$RELY_WORK/hnsw"; rm -rf "$W"; mkdir -p "$W/base/retrieval"
"$BIN" -q data split ml-100k --seed 42 --out "$W/split" > /dev/null
{ cat "$ROOT/configs/retrieval-tfrs.toml"; printf '\n[index]\nkind = "hnsw"\n'; } > "$W/hnsw.toml"
"$BIN" -q train retrieval --train "$W/split/train.tsv" --test "$W/split/test.tsv" --data ml-100k \
  --config "$W/hnsw.toml" --out "$W/base/retrieval/1" > /dev/null
ls "$W/base/retrieval/1"
echo '{"instances": ["42", "7"]}' > "$W/predict.json"
start_server "$W/base"
machine_load
"$STRESS" soak "$ADDR" 4 40 100 "$W/predict.json" /v1/models/retrieval:predict > "$W/loop.txt" 2>&1 &
loop=$!
sleep 5
f="$W/base/retrieval/1/index.hnsw"
size=$(stat -c %s "$f")
truncate -s 0 "$f"; sleep 5
echo "after truncating index.hnsw in place: server $(kill -0 "$SERVER_PID" 2> /dev/null && echo alive || echo DEAD)"
head -c "$size" /dev/urandom | dd of="$f" conv=notrunc status=none; sleep 5
echo "after rewriting it in place with other bytes: server $(kill -0 "$SERVER_PID" 2> /dev/null && echo alive || echo DEAD)"
wait "$loop" || true
tail -2 "$W/loop.txt"
echo "failure lines: $(grep -c '^status\|^request\|^connect' "$W/loop.txt" || true)"
grep -i "sigbus\|bus error" "$RELY_WORK/server.log" || true
