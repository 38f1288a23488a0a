#!/usr/bin/env python3
"""HTTP client for the event-log checks of scripts/reliability/events.sh (stdlib only).

  events_client.py ingest ADDR SECONDS CONNECTIONS BATCH
      posts batches of BATCH events to /v1/events over CONNECTIONS keep-alive
      connections for SECONDS; prints events/s, batches/s and batch latency.
  events_client.py load ADDR PREFIX ACKED_FILE
      posts batches of 50 events with ids PREFIX-<n> until the server goes away;
      appends the id of every event acknowledged (HTTP 200) to ACKED_FILE.
  events_client.py check EXPORT_TSV ACKED_FILE...
      every acknowledged id present in the export, no id twice; prints counts.
"""
import http.client
import json
import statistics
import sys
import threading
import time


def body(events):
    return json.dumps({"events": events}).encode()


def ingest(addr, seconds, conns, batch):
    host, port = addr.split(":")
    bodies = [
        body([{"user_id": f"u{(b * batch + i) % 5000}", "item_id": f"i{(b * 7 + i) % 20000}",
               "event": "click", "timestamp": 1_700_000_000 + i} for i in range(batch)])
        for b in range(16)
    ]
    stop = time.monotonic() + seconds
    lat, errors = [], []

    def worker(w):
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        n = w
        while time.monotonic() < stop:
            t = time.perf_counter()
            c.request("POST", "/v1/events", bodies[n % len(bodies)], {"content-type": "application/json"})
            r = c.getresponse()
            data = r.read()
            if r.status != 200:
                errors.append((r.status, data[:200]))
                continue
            lat.append(time.perf_counter() - t)
            n += conns

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3
    print(f"ingest: {len(lat) * batch / wall:,.0f} events/s ({len(lat) / wall:,.0f} batches/s of {batch}, "
          f"{conns} connections, {wall:.1f} s); batch latency p50 {p(0.5):.2f} ms p99 {p(0.99):.2f} ms; "
          f"{len(errors)} failed")
    if errors:
        print("first failure:", errors[0])
        sys.exit(1)


def load(addr, prefix, acked_path):
    host, port = addr.split(":")
    n = 0
    with open(acked_path, "a") as acked:
        try:
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            while True:
                ids = [f"{prefix}-{n + i}" for i in range(50)]
                events = [{"user_id": f"u{(n + i) % 97}", "item_id": x, "event": "view", "timestamp": 1_700_000_000}
                          for i, x in enumerate(ids)]
                c.request("POST", "/v1/events", body(events), {"content-type": "application/json"})
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    acked.write("\n".join(ids) + "\n")
                    acked.flush()
                n += 50
        except (OSError, http.client.HTTPException):
            pass  # the server was killed


def check(export, acked_files):
    seen = {}
    with open(export) as f:
        header = next(f).rstrip("\n").split("\t")
        col = header.index("item_id")
        for line in f:
            item = line.rstrip("\n").split("\t")[col]
            seen[item] = seen.get(item, 0) + 1
    acked = set()
    for a in acked_files:
        with open(a) as f:
            acked.update(l.strip() for l in f if l.strip())
    missing = [x for x in acked if x not in seen]
    dup = [x for x, k in seen.items() if k > 1]
    print(f"check: {len(acked)} acknowledged, {len(seen)} in the log "
          f"({len(seen) - len(acked) + len(missing)} logged but not acknowledged: in flight at a kill); "
          f"{len(missing)} acknowledged but missing, {len(dup)} duplicated")
    if missing or dup:
        print("FAILED: missing", missing[:5], "duplicated", dup[:5])
        sys.exit(1)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "ingest":
        ingest(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif mode == "load":
        load(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "check":
        check(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
