"""Mean ± std over seeds of `shortlist eval --pipeline --json` outputs.

usage: python3 bench/summarize_pipeline.py seed42.json seed1.json ...
"""
import json
import statistics
import sys

KEYS = ["ndcg@10", "recall@10", "recall@20", "hit_rate@10"]


def main(paths):
    rows = {}
    order = []
    for p in paths:
        with open(p) as f:
            doc = json.load(f)
        for r in doc["rows"]:
            if r["list"] not in rows:
                rows[r["list"]] = []
                order.append(r["list"])
            rows[r["list"]].append(r["metrics"])
    print(f"\nmean ± std over {len(paths)} seeds")
    print(f"{'list':<58}" + "".join(f"{k:>18}" for k in KEYS))
    for name in order:
        cells = []
        for k in KEYS:
            v = [m[k] for m in rows[name]]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.mean(v):.4f} ± {sd:.4f}")
        print(f"{name:<58}" + "".join(f"{c:>18}" for c in cells))


if __name__ == "__main__":
    main(sys.argv[1:])
