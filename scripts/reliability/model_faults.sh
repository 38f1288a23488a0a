#!/usr/bin/env bash
# Model faults under a concurrent request loop (/v1/recommend, both models, 100
# requests/s): in-place truncation of every served file, slow non-atomic copies,
# absurd dimensions, huge sparse files (checksummed and old-style manifests),
# symbolic links (to /dev/zero; a version directory linked to a good copy), a
# stray directory, a kind change, deletions. Target: zero failed requests, no
# crash, the right versions served at the end, memory growth ≤ 50 MB.
# Usage: scripts/reliability/model_faults.sh
source "$(dirname "$0")/common.sh"
build
pristine="$(models)"
base="$(fresh_base faults)"
echo '{"user_id": "42", "k": 10}' > "$RELY_WORK/recommend-body.json"
start_server "$base" --poll-seconds 0.5
machine_load
"$STRESS" soak "$ADDR" 4 240 100 "$RELY_WORK/recommend-body.json" /v1/recommend > "$RELY_WORK/faults-loop.txt" 2>&1 &
loop=$!
sleep 5
rss0="$(rss_mb)"
echo "RSS at start: $rss0 MB"

state() { # state MODEL VERSION → LOADING / AVAILABLE / END (+ error)
  curl -fsS "http://$ADDR/v1/models/$1" | python3 -c "
import json, sys
for s in json.load(sys.stdin)['model_version_status']:
    if s['version'] == '$2':
        print(s['state'], s['status']['error_message'][:160])" 2> /dev/null || echo "?"
}
wait_state() { # wait_state MODEL VERSION STATE SECONDS
  local t=0
  while [ "$t" -lt $(($4 * 10)) ]; do
    case "$(state "$1" "$2")" in "$3"*) return 0 ;; esac
    sleep 0.1; t=$((t + 1))
  done
  echo "  TIMEOUT: $1/$2 is '$(state "$1" "$2")', expected $3"
}
row() { printf '%-58s %s\n' "$1" "$2"; }
served() { curl -fsS "http://$ADDR/readyz"; }
slow_copy() { # slow_copy SRC DST: file by file in sorted order, 256 KiB every 50 ms, not atomic
  python3 - "$1" "$2" << 'PY'
import os, sys, time
src, dst = sys.argv[1], sys.argv[2]
for root, dirs, files in os.walk(src):
    dirs.sort()
    rel = os.path.relpath(root, src)
    os.makedirs(os.path.join(dst, rel), exist_ok=True)
    for f in sorted(files):
        with open(os.path.join(root, f), "rb") as i, open(os.path.join(dst, rel, f), "wb") as o:
            while chunk := i.read(256 * 1024):
                o.write(chunk); o.flush(); time.sleep(0.05)
PY
}

echo "fault                                                      outcome"
# 1. In-place truncation of every file of the served versions.
find "$base/retrieval/1" "$base/ranking/1" -type f | while read -r f; do truncate -s "$(( $(stat -c %s "$f") / 2 ))" "$f"; done
sleep 2
row "truncate every served file in place (retrieval/1, ranking/1)" "$(served)"
# 2. Slow, non-atomic copies of new versions.
slow_copy "$pristine/ranking/1" "$base/ranking/2" &
copy=$!
slow_copy "$pristine/retrieval/1" "$base/retrieval/2"
wait "$copy"
wait_state ranking 2 AVAILABLE 30; wait_state retrieval 2 AVAILABLE 30
row "slow copies ranking/2, retrieval/2 (refused mid-copy, then)" "ranking/2 $(state ranking 2 | cut -c1-10) retrieval/2 $(state retrieval 2 | cut -c1-10)"
# 3. Absurd dimensions in the manifest.
cp -r "$pristine/ranking/1" "$base/ranking/.3.tmp"
python3 - "$base/ranking/.3.tmp/manifest.json" << 'PY'
import json, sys
m = json.load(open(sys.argv[1])); m["config"]["embedding_dim"] = 10**12; m["config"]["hidden"] = [10**9, 10**9]
json.dump(m, open(sys.argv[1], "w"))
PY
mv "$base/ranking/.3.tmp" "$base/ranking/3"
wait_state ranking 3 END 20
row "ranking/3: embedding_dim 1e12, hidden [1e9, 1e9]" "$(state ranking 3)"
# 4. Huge sparse weights: checksummed manifest, then an old-style one.
cp -r "$pristine/retrieval/1" "$base/retrieval/.3.tmp"
truncate -s 3G "$base/retrieval/.3.tmp/weights.safetensors"
mv "$base/retrieval/.3.tmp" "$base/retrieval/3"
wait_state retrieval 3 END 20
row "retrieval/3: 3 GiB sparse weights" "$(state retrieval 3)"
cp -r "$pristine/retrieval/1" "$base/retrieval/.4.tmp"
python3 - "$base/retrieval/.4.tmp/manifest.json" << 'PY'
import json, sys
m = json.load(open(sys.argv[1])); del m["files"]; json.dump(m, open(sys.argv[1], "w"))
PY
truncate -s 3G "$base/retrieval/.4.tmp/weights.safetensors"
mv "$base/retrieval/.4.tmp" "$base/retrieval/4"
wait_state retrieval 4 END 20
row "retrieval/4: 3 GiB sparse weights, manifest without file list" "$(state retrieval 4)"
echo "  RSS now: $(rss_mb) MB"
# 5. Symbolic links.
cp -r "$pristine/retrieval/1" "$base/retrieval/.5.tmp"
ln -sf /dev/zero "$base/retrieval/.5.tmp/weights.safetensors"
mv "$base/retrieval/.5.tmp" "$base/retrieval/5"
wait_state retrieval 5 END 20
row "retrieval/5: weights.safetensors -> /dev/zero" "$(state retrieval 5)"
cp -r "$pristine/ranking/1" "$RELY_WORK/ranking-elsewhere"
ln -s "$RELY_WORK/ranking-elsewhere" "$base/ranking/4"
wait_state ranking 4 AVAILABLE 20
row "ranking/4 -> a good copy elsewhere (symlinked version)" "$(state ranking 4)"
# 6. A stray directory.
mkdir -p "$base/junk/1" && echo garbage > "$base/junk/1/manifest.json"
sleep 2
row "stray junk/1 (garbage manifest)" "readyz $(curl -s -o /dev/null -w '%{http_code}' "http://$ADDR/readyz")"
# 7. A kind change.
cp -r "$pristine/retrieval/1" "$base/ranking/.5.tmp" && mv "$base/ranking/.5.tmp" "$base/ranking/5"
wait_state ranking 5 END 20
row "ranking/5 is a retrieval model" "$(state ranking 5)"
# 8. Deletions: the served ranking version, then the whole retrieval model.
rm -rf "$base/ranking/4"
sleep 3
row "rm ranking/4 (served): rolls back to" "$(served)"
rm -rf "$base/retrieval"
sleep 2
row "rm -rf retrieval/ (whole model)" "$(served)"

echo "faults done; the request loop runs to its end"
wait "$loop" || true
tail -3 "$RELY_WORK/faults-loop.txt"
echo "RSS at end: $(rss_mb) MB (start $rss0 MB)"
kill -0 "$SERVER_PID" && echo "server alive"
echo "served at the end: $(served) (expected retrieval 2, ranking 2)"
metric 'shortlist_model_load_failures_total'
