#!/usr/bin/env bash
# Soak: the maximum throughput of /v1/recommend (16 connections, closed loop),
# then 80 % of it for 10 minutes with a hot reload every 30 s (a new version of
# ranking or retrieval, in turn, copied in atomically), RSS sampled every 10 s.
# Target: memory flat (±10 %), zero failed requests.
# Usage: scripts/reliability/soak.sh [seconds=600] [reload_every=30]
source "$(dirname "$0")/common.sh"
SECS="${1:-600}"; EVERY="${2:-30}"
build
base="$(fresh_base soak)"
echo '{"user_id": "42", "k": 10}' > "$RELY_WORK/recommend-body.json"
start_server "$base"
machine_load
max=$("$STRESS" closed "$ADDR" 16 10 "$RELY_WORK/recommend-body.json" /v1/recommend | tee /dev/stderr | grep -o '([0-9]*/s)' | head -1 | tr -dc 0-9)
rate=$((max * 8 / 10))
echo "maximum ${max}/s; soaking at ${rate}/s for ${SECS}s with a reload every ${EVERY}s"
"$STRESS" soak "$ADDR" 32 "$SECS" "$rate" "$RELY_WORK/recommend-body.json" /v1/recommend > "$RELY_WORK/soak.txt" 2>&1 &
loop=$!
start=$(date +%s); v=1; : > "$RELY_WORK/soak-rss.txt"
while kill -0 "$loop" 2> /dev/null; do
  sleep 10
  now=$(( $(date +%s) - start ))
  echo "$now $(rss_mb)" >> "$RELY_WORK/soak-rss.txt"
  if [ $((now % EVERY)) -lt 10 ] && [ "$now" -ge "$EVERY" ]; then
    v=$((v + 1)); m=$([ $((v % 2)) = 0 ] && echo ranking || echo retrieval)
    cp -r "$base/$m/1" "$base/$m/.$v.tmp" && mv "$base/$m/.$v.tmp" "$base/$m/$v"
  fi
done
cat "$RELY_WORK/soak.txt" | grep -v "^status\|^request\|^connect" | tail -8
echo "failure lines: $(grep -c '^status\|^request\|^connect' "$RELY_WORK/soak.txt" || true)"
python3 - "$RELY_WORK/soak-rss.txt" << 'PY'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
warm = [r for t, r in rows if t >= 60] or [r for _, r in rows]
print(f"RSS after the first minute: min {min(warm):.1f} MB, max {max(warm):.1f} MB, first {warm[0]:.1f}, last {warm[-1]:.1f}, spread {100 * (max(warm) - min(warm)) / min(warm):.1f} % of the minimum")
PY
echo "served at the end: $(curl -fsS "http://$ADDR/readyz") after $((v - 1)) reloads"
