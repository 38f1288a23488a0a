"""`recommend` for every user of split42, two staged Python packages side by side.

    python bench/py_recommend_ab.py OLD_DIR NEW_DIR [ROUNDS] [SPLIT_DIR] [GAP_MS]

Each DIR holds a package `shortlist/` staged as python/tests/pytest.rs stages it
(python/shortlist/*.py plus a build's target/release/deps/lib_shortlist.so copied as
shortlist/_shortlist.abi3.so). Rounds alternate OLD and NEW; each round is one fresh
process per package that fits the retrieval model (3 epochs, seed 42) and times the
extension's call, the arrays and the DataFrame (median of 301 calls each). Prints
every round, then the medians over rounds. With GAP_MS (say 20) every call comes after
that long asleep, as a notebook's single calls do (101 calls each then), instead of
back to back: on small VMs the two differ (BENCHMARKS.md, "The Python package").
"""

import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CODE = r"""
import json, statistics, sys, time
import shortlist
from shortlist._models import _ids
split = sys.argv[1]
train, _ = shortlist.Dataset.from_split_files(f"{split}/train.tsv", f"{split}/test.tsv", progress=False)
model = shortlist.Retrieval(epochs=3, seed=42).fit(train, progress=False)
users = train.to_pandas()["user_id"].unique()
raw, ids = model._fitted(), _ids(users)

gap = float(sys.argv[2]) / 1000

def median_ms(f, n=101 if gap else 301):
    times = []
    for _ in range(n):
        if gap:
            time.sleep(gap)
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)

print(json.dumps({
    "extension": median_ms(lambda: raw.recommend(ids, 10, True)),
    "arrays": median_ms(lambda: model.recommend(users, k=10, as_frame=False)),
    "frame": median_ms(lambda: model.recommend(users, k=10)),
}))
"""


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    split = sys.argv[4] if len(sys.argv) > 4 else os.path.join(HERE, "..", "..", "shared", "data", "ml-100k-split42")
    gap = sys.argv[5] if len(sys.argv) > 5 else "0"
    results = {"old": [], "new": []}
    for _ in range(rounds):
        for name, path in (("old", old), ("new", new)):
            env = dict(os.environ, PYTHONPATH=os.path.abspath(path))
            out = subprocess.run([sys.executable, "-c", CODE, os.path.abspath(split), gap], env=env,
                                 capture_output=True, text=True, cwd="/")
            if out.returncode != 0:
                print(f"{name} ({path}) failed:\n{out.stderr}", file=sys.stderr)
                return 1
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(name, {k: round(v, 3) for k, v in results[name][-1].items()}, flush=True)
    for name, runs in results.items():
        print(f"median {name}:", {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
