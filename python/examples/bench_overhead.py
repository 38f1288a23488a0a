"""The Python package's overhead beside the CLI on MovieLens 100k (cached).

Prints: `fit` + report of the retrieval and ranking models from Python against
`shortlist train … --json` (the same work: same split, configuration, seed),
`evaluate`, `recommend` for every user, `predict` of 100,000 pairs. Medians of
REPEAT runs (default 3; the fits once each unless --fits N).

    python examples/bench_overhead.py [--fits N] [--skip-fits] [SHORTLIST_BIN]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import shortlist

args = [a for a in sys.argv[1:] if not a.startswith("--")]
fits = int(next((a.split("=")[1] for a in sys.argv[1:] if a.startswith("--fits=")), "1"))
skip_fits = "--skip-fits" in sys.argv
here = os.path.dirname(os.path.abspath(__file__))
cli = args[0] if args else os.path.join(here, "..", "..", "target", "release", "shortlist")


def median_time(f, n=3):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


data = shortlist.datasets.movielens("ml-100k", progress=False)
train, test = data.split(ratio=0.8, seed=42)
tmp = tempfile.mkdtemp()
print(f"load average at start: {os.getloadavg()[0]:.2f}")
models = {}
for kind, cls in (("retrieval", shortlist.Retrieval), ("ranking", shortlist.Ranking)):
    if skip_fits:
        break
    py = median_time(lambda: models.__setitem__(kind, cls().fit(train, test, progress=False)), fits)
    out = os.path.join(tmp, kind)
    cmd = [cli, "-q", "train", kind, "--data", "ml-100k", "--out", out, "--json"]
    c = median_time(lambda: subprocess.run(cmd, check=True, capture_output=True), fits)
    print(f"{kind:9s} fit + report + files: Python {py:6.2f} s   CLI {c:6.2f} s (process, load and split included)   {100 * (py / c - 1):+.1f} %")
if skip_fits:
    models["retrieval"] = shortlist.Retrieval(epochs=1).fit(train, test, progress=False)
    models["ranking"] = shortlist.Ranking(epochs=1).fit(train, test, progress=False)

r = models["retrieval"]
e = median_time(lambda: r.evaluate(test))
print(f"retrieval evaluate(test): {1000 * e:.1f} ms")
users = sorted(set(data.to_pandas()["user_id"]))
t = median_time(lambda: r.recommend(users, k=10, as_frame=False), 301)
t2 = median_time(lambda: r.recommend(users, k=10), 301)
print(f"recommend, all {len(users)} users, k=10: {1000 * t:.2f} ms (numpy arrays), {1000 * t2:.2f} ms (DataFrame)")
rng = np.random.default_rng(0)
items = sorted(set(data.to_pandas()["item_id"]))
pu = [users[i] for i in rng.integers(0, len(users), 100_000)]
pi = [items[i] for i in rng.integers(0, len(items), 100_000)]
p = median_time(lambda: models["ranking"].predict(pu, pi), 5)
# The same pairs as new str objects (as read from a file: no two elements share one).
fresh_u, fresh_i = [str(int(u)) for u in pu], [str(int(i)) for i in pi]
p2 = median_time(lambda: models["ranking"].predict(fresh_u, fresh_i), 5)
nu, ni = np.array(pu, dtype=np.int64), np.array(pi, dtype=np.int64)
p3 = median_time(lambda: models["ranking"].predict(nu, ni), 5)
print(f"predict, 100,000 pairs: {1000 * p:.1f} ms (lists of the ids' str objects), "
      f"{1000 * p2:.1f} ms (a new str per element), {1000 * p3:.1f} ms (numpy int64 arrays)")
print(f"load average at end: {os.getloadavg()[0]:.2f}")
