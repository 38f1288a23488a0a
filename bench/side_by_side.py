"""shortlist beside implicit (ALS, BPR) and TensorFlow Recommenders on split42, from
one Python process: quality by one evaluator, and wall time.

Every model ranks the whole catalogue for every test user, its training items left
out; the same function below turns each model's top-20 lists into NDCG@10 (binary
gain) and Recall@20 (hits / the user's test items), averaged over the users with a
test item — the definition of bench/tf_reference/retrieval.py's full ranking.
shortlist's own `evaluate` is printed beside it as a cross-check.

    python bench/side_by_side.py [SPLIT_DIR] [--no-tf] [--no-tune]

implicit runs twice: at its library defaults, and tuned — a grid of ALS and BPR
hyper-parameters (below) fitted on a random 90 % of train.tsv's rows and scored on the
other 10 % by the same NDCG@10, the best point refitted on all of train.tsv
(`--no-tune` skips it: about 5 minutes on 2 cores).

needs: the shortlist package (pip install ./python), numpy, pandas, scipy, implicit;
TensorFlow Recommenders in the venv of bench/tf_reference/setup.sh
($TF_VENV, default /tmp/tfvenv), run as a subprocess (its own process and threads).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

import shortlist

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "configs")
args = [a for a in sys.argv[1:] if not a.startswith("--")]
SPLIT = args[0] if args else os.path.join(HERE, "..", "..", "shared", "data", "ml-100k-split42")
TF_PY = os.path.join(os.environ.get("TF_VENV", "/tmp/tfvenv"), "bin", "python")
K = 20

train_df = pd.read_csv(os.path.join(SPLIT, "train.tsv"), sep="\t", dtype={"user_id": str, "item_id": str})
test_df = pd.read_csv(os.path.join(SPLIT, "test.tsv"), sep="\t", dtype={"user_id": str, "item_id": str})
relevant = test_df.groupby("user_id")["item_id"].agg(set).to_dict()
seen = train_df.groupby("user_id")["item_id"].agg(set).to_dict()
users = sorted(relevant, key=int)
disc = 1.0 / np.log2(np.arange(K) + 2.0)


def quality(lists):
    """NDCG@10 and Recall@20 of `lists` (user id → item ids, best first)."""
    ndcg, recall = [], []
    for u in users:
        rel = relevant[u]
        hits = np.array([i in rel for i in lists.get(u, [])[:K]] + [False] * K)[:K]
        recall.append(hits.sum() / len(rel))
        idcg = disc[: min(10, len(rel))].sum()
        ndcg.append((hits[:10] * disc[:10]).sum() / idcg)
    return float(np.mean(ndcg)), float(np.mean(recall))


def top_from_scores(scores, user_ids, item_ids):
    """Top-K lists from a dense users × items score matrix, training items masked,
    ties to the lower column."""
    col = {i: n for n, i in enumerate(item_ids)}
    out = {}
    for r, u in enumerate(user_ids):
        if u not in relevant:
            continue
        s = scores[r].astype(np.float64)
        s[[col[i] for i in seen.get(u, ()) if i in col]] = -np.inf
        top = np.argsort(-s, kind="stable")[:K]
        out[u] = [item_ids[j] for j in top]
    return out


rows = []


def report(name, fit_s, lists, own=None, note=""):
    ndcg, recall = quality(lists)
    rows.append((name, ndcg, recall, fit_s, own, note))
    print(f"{name:40s} ndcg@10 {ndcg:.4f}  recall@20 {recall:.4f}  fit {fit_s:6.2f} s", flush=True)


print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
train, test = shortlist.Dataset.from_split_files(
    os.path.join(SPLIT, "train.tsv"), os.path.join(SPLIT, "test.tsv"), progress=False
)
for name, make in (
    ("shortlist Retrieval (TFRS tutorial config)", lambda: shortlist.Retrieval(config=os.path.join(CONFIGS, "retrieval-tfrs.toml"))),
    ("shortlist Retrieval (default)", lambda: shortlist.Retrieval()),
    ("shortlist EASE (default)", lambda: shortlist.EASE()),
    ("shortlist IALS (default)", lambda: shortlist.IALS()),
):
    model = make()
    t = time.perf_counter()
    model.fit(train, progress=False)
    fit_s = time.perf_counter() - t
    recs = model.recommend(users, k=K, exclude_seen=True, as_frame=False)
    lists = pd.Series(recs["item_id"]).groupby(recs["user_id"]).agg(list).to_dict()
    own = model.evaluate(test)
    report(name, fit_s, lists, own=(own.get("ndcg@10"), own.get("recall@20")))

# implicit: binary interactions, its default hyper-parameters, both cores.
import implicit  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

uid = {u: n for n, u in enumerate(sorted(set(train_df["user_id"]), key=int))}
iid = {i: n for n, i in enumerate(sorted(set(train_df["item_id"]), key=int))}
items_by_col = sorted(iid, key=iid.get)
x = sp.csr_matrix(
    (np.ones(len(train_df), dtype=np.float32), (train_df["user_id"].map(uid), train_df["item_id"].map(iid))),
    shape=(len(uid), len(iid)),
)
def implicit_lists(model, x_fit, user_rows, item_names):
    """Top-K lists of implicit `model` for `user_rows` (user id → matrix row), items
    in `x_fit` masked."""
    known = list(user_rows)
    ids, _ = model.recommend([user_rows[u] for u in known], x_fit[[user_rows[u] for u in known]],
                             N=K, filter_already_liked_items=True)
    return {u: [item_names[j] for j in row] for u, row in zip(known, ids)}


for name, cls in (
    (f"implicit {implicit.__version__} ALS (defaults)", implicit.cpu.als.AlternatingLeastSquares),
    (f"implicit {implicit.__version__} BPR (defaults)", implicit.cpu.bpr.BayesianPersonalizedRanking),
):
    with threadpool_limits(1, "blas"):
        model = cls(num_threads=2, random_state=42)
        t = time.perf_counter()
        model.fit(x, show_progress=False)
        fit_s = time.perf_counter() - t
    report(name, fit_s, implicit_lists(model, x, {u: uid[u] for u in users if u in uid}, items_by_col))



# implicit tuned: each grid point fitted on a random 90 % of train.tsv's rows (seed 42),
# scored on the other 10 % (its users' held-out items, the 90 % masked) by NDCG@10. A
# random carve, as split42 itself is random: on the last 10 % by time (mostly the
# latest users' whole histories) the best point does not transfer (ALS: 0.337 on test).
if "--no-tune" not in sys.argv:
    order = np.random.default_rng(42).permutation(len(train_df))
    cut = int(round(len(order) * 0.9))
    fit_df, val_df = train_df.iloc[np.sort(order[:cut])], train_df.iloc[np.sort(order[cut:])]
    x_fit = sp.csr_matrix(
        (np.ones(len(fit_df), dtype=np.float32), (fit_df["user_id"].map(uid), fit_df["item_id"].map(iid))),
        shape=x.shape,
    )
    val_relevant = val_df.groupby("user_id")["item_id"].agg(set).to_dict()

    def val_ndcg(lists):
        out = []
        for u, rel in val_relevant.items():
            hits = np.array([i in rel for i in lists.get(u, [])[:10]] + [False] * 10)[:10]
            out.append((hits * disc[:10]).sum() / disc[: min(10, len(rel))].sum())
        return float(np.mean(out))

    grids = {
        "ALS": (implicit.cpu.als.AlternatingLeastSquares,
                [dict(factors=f, regularization=r, alpha=a, iterations=15)
                 for f in (32, 64, 128, 256) for r in (0.1, 1.0, 10.0, 50.0, 200.0)
                 for a in (1.0, 3.0, 10.0, 30.0)]),
        "BPR": (implicit.cpu.bpr.BayesianPersonalizedRanking,
                [dict(factors=f, learning_rate=lr, regularization=r, iterations=it)
                 for f in (32, 64, 128) for lr in (0.003, 0.01, 0.03)
                 for r in (0.001, 0.01, 0.1) for it in (30, 100, 300)]),
    }
    val_users = {u: uid[u] for u in val_relevant if u in uid}
    for name, (cls, grid) in grids.items():
        t0 = time.perf_counter()
        best = None
        for p in grid:
            with threadpool_limits(1, "blas"):
                m = cls(num_threads=2, random_state=42, **p)
                m.fit(x_fit, show_progress=False)
            v = val_ndcg(implicit_lists(m, x_fit, val_users, items_by_col))
            if best is None or v > best[1]:
                best = (p, v)
        tune_s = time.perf_counter() - t0
        p, v = best
        with threadpool_limits(1, "blas"):
            model = cls(num_threads=2, random_state=42, **p)
            t = time.perf_counter()
            model.fit(x, show_progress=False)
            fit_s = time.perf_counter() - t
        known = {u: uid[u] for u in users if u in uid}
        shown = ", ".join(f"{k} {v:g}" for k, v in p.items())
        report(f"implicit {implicit.__version__} {name} (tuned: {shown})", fit_s,
               implicit_lists(model, x, known, items_by_col),
               note=f"best of {len(grid)} points (validation NDCG@10 {v:.4f}; tuning {tune_s:.0f} s)")

# TensorFlow Recommenders: the basic-retrieval tutorial (32-d, Adagrad 0.1, batch 8192,
# 3 epochs), trained by bench/tf_reference/retrieval.py in its own venv.
if "--no-tf" not in sys.argv and os.path.exists(TF_PY):
    with tempfile.TemporaryDirectory() as d:
        npz = os.path.join(d, "towers.npz")
        t = time.perf_counter()
        subprocess.run(
            [TF_PY, os.path.join(HERE, "tf_reference", "retrieval.py"), "--epochs", "3", "--seed", "42",
             "--no-train-metrics", "--data", SPLIT, "--save-embeddings", npz],
            check=True, capture_output=True, env=dict(os.environ, TF_RESULTS=d),
        )
        wall = time.perf_counter() - t
        res = json.load(open(os.path.join(d, "retrieval_seed42.json")))
        fit_s = sum(e["train_seconds"] for e in res["per_epoch"])
        z = np.load(npz)
        lists = top_from_scores(z["U"] @ z["V"].T, [str(u) for u in z["users"]], [str(i) for i in z["items"]])
        report(f"TFRS {res['versions']['tfrs']} basic retrieval (tutorial)", fit_s, lists,
               note=f"process {wall:.1f} s (TensorFlow start, per-epoch evaluation)")
print(f"load average at end: {os.getloadavg()[0]:.2f}")

print("\n| model | NDCG@10 | Recall@20 | fit (s) | shortlist's own evaluate: NDCG@10 / Recall@20 |")
print("| --- | --- | --- | --- | --- |")
for name, ndcg, recall, fit_s, own, note in rows:
    own_s = f"{own[0]:.4f} / {own[1]:.4f}" if own else (note or "—")
    print(f"| {name} | {ndcg:.4f} | {recall:.4f} | {fit_s:.2f} | {own_s} |")
