#!/usr/bin/env python3
"""Peers for shortlist's product-log benchmark (BENCHMARKS.md, "Item cold start"):
EASE, implicit's ALS and implicit's BPR on the same temporal split files, tuned on a
validation carve of train, scored on test with the README's full-ranking definitions;
and the same evaluator applied to lists another system wrote (shortlist's served
pipeline: `shortlist recommend --pipeline BASE --all-users -k 20 --exclude-seen
--jsonl --output F`), with the share of hits on cold items.

    python3 bench/product_peers.py --split DIR [--lists NAME=F.jsonl ...] [--seeds 42,1,2]
                                   [--quick] [--json OUT]

DIR holds train.tsv and test.tsv (`shortlist data split … --method temporal`). Needs
numpy, scipy and implicit (e.g. a venv with `pip install numpy scipy implicit`).

Evaluation (crates/eval/src/lib.rs): every user with a test interaction; all items of
the catalogue (train ∪ test items) except the user's training items are ranked; the
relevant set is the user's distinct test items; recall@K = |hits@K| / |R|, ndcg@K
with binary gains and IDCG over min(K, |R|); ties go to the lower item index (items
indexed in order of first appearance in train.tsv, then test.tsv). Users without a
training interaction get the training popularity order from every peer (as
shortlist's pipeline gives unknown users). A cold item is one without a training
interaction: the peers can never recommend it.

Tuning: the last 10 % of train.tsv by timestamp is the validation part (the test split
is temporal too); every grid point is fitted on the first 90 % and scored on it; the
best by NDCG@10 is refitted on all of train.tsv (regularisation unchanged) and scored
on test, over --seeds for the randomised ALS and BPR.
"""
import argparse
import csv
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

try:
    import numpy as np
    import scipy.sparse as sp
    import implicit
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking
except ImportError as e:  # pragma: no cover
    sys.exit(f"product_peers.py needs numpy, scipy and implicit ({e}); "
             "e.g. python3 -m venv .venv && .venv/bin/pip install numpy scipy implicit")

KS = (10, 20)


def read_split(path):
    """Rows of a split file: (user, item, rating, timestamp) as strings/floats/ints."""
    with open(path, newline="") as f:
        r = csv.reader(f, delimiter="\t")
        header = next(r)
        want = ["user_id", "item_id", "rating", "timestamp"]
        if header[:4] != want:
            sys.exit(f"{path}: line 1: expected the header {want}, found {header}")
        rows = []
        for n, row in enumerate(r, start=2):
            if len(row) < 4:
                sys.exit(f"{path}: line {n}: expected 4 tab-separated fields, found {len(row)}")
            try:
                rows.append((row[0], row[1], float(row[2]), int(row[3])))
            except ValueError as e:
                sys.exit(f"{path}: line {n}: {e}")
    return rows


class Data:
    """Train/test interactions as index arrays; items and users in first-seen order."""

    def __init__(self, train_rows, test_rows):
        self.users, self.items = {}, {}
        for u, i, _, _ in train_rows + test_rows:
            self.users.setdefault(u, len(self.users))
            self.items.setdefault(i, len(self.items))
        self.item_ids = list(self.items)
        self.n_users, self.n_items = len(self.users), len(self.items)

        def arrays(rows):
            u = np.array([self.users[r[0]] for r in rows], dtype=np.int64)
            i = np.array([self.items[r[1]] for r in rows], dtype=np.int64)
            v = np.array([r[2] for r in rows], dtype=np.float32)
            t = np.array([r[3] for r in rows], dtype=np.int64)
            return u, i, v, t

        self.train = arrays(train_rows)
        self.test = arrays(test_rows)


def matrix(n_users, n_items, u, i, v=None):
    """users × items CSR; repeated pairs keep the largest value."""
    data = np.ones(len(u), dtype=np.float32) if v is None else v.astype(np.float32)
    m = sp.coo_matrix((data, (u, i)), shape=(n_users, n_items)).tocsr()
    m.sum_duplicates()
    if v is None:
        m.data[:] = 1.0
    return m


class Evaluator:
    """The README's full-ranking metrics for one train/test split (index space)."""

    def __init__(self, n_users, n_items, train_ui, test_ui):
        self.n_items = n_items
        self.seen = matrix(n_users, n_items, *train_ui)
        test = matrix(n_users, n_items, *test_ui)
        self.users = np.flatnonzero(np.diff(test.indptr) > 0)
        self.relevant = [set(test.indices[test.indptr[u]:test.indptr[u + 1]]) for u in self.users]
        # Training popularity: the list of users without training interactions, and
        # which items a model can know at all (the others score -inf for the peers).
        self.counts = np.bincount(train_ui[1], minlength=n_items).astype(np.float64)
        self.unknown_items = self.counts == 0
        self.has_train = np.diff(self.seen.indptr) > 0

    def fallback(self, u):
        """The popularity list of a user the models do not know."""
        return self.top_k(self.counts, u, max(KS))

    def top_k(self, scores, u, k):
        """The best `k` unseen items of user `u` by `scores`, ties by lower index."""
        s = scores.astype(np.float64, copy=True)
        s[np.isnan(s)] = -np.inf
        s[self.seen.indices[self.seen.indptr[u]:self.seen.indptr[u + 1]]] = -np.inf
        if k < len(s):
            kth = np.partition(-s, k - 1)[k - 1]
            idx = np.flatnonzero(-s <= kth)
        else:
            idx = np.arange(len(s))
        order = idx[np.lexsort((idx, -s[idx]))]
        return [int(i) for i in order[:k] if np.isfinite(s[i])]

    def metrics_of_lists(self, lists, cold=None):
        """Metrics of top-K lists (`lists[u]`: item indices best first) over the
        evaluated users; `cold`: boolean per item, for the share of hits on cold items."""
        sums = {f"{m}@{k}": 0.0 for k in KS for m in ("recall", "ndcg", "hit_rate")}
        hits_total = {k: 0 for k in KS}
        hits_cold = {k: 0 for k in KS}
        disc = 1.0 / np.log2(np.arange(2, max(KS) + 2))
        for u, rel in zip(self.users, self.relevant):
            lst = lists(u)
            for k in KS:
                hit_ranks = [r for r, i in enumerate(lst[:k]) if i in rel]
                dcg = sum(disc[r] for r in hit_ranks)
                idcg = disc[: min(k, len(rel))].sum()
                sums[f"recall@{k}"] += len(hit_ranks) / len(rel)
                sums[f"ndcg@{k}"] += dcg / idcg
                sums[f"hit_rate@{k}"] += 1.0 if hit_ranks else 0.0
                hits_total[k] += len(hit_ranks)
                if cold is not None:
                    hits_cold[k] += sum(1 for r in hit_ranks if cold[lst[r]])
        n = len(self.users)
        out = {key: v / n for key, v in sums.items()}
        out["users_evaluated"] = n
        if cold is not None:
            for k in KS:
                out[f"cold_hit_share@{k}"] = hits_cold[k] / max(hits_total[k], 1)
        return out

    def metrics(self, score_users, cold=None):
        """Metrics of a model: `score_users(users) -> scores (len(users) × n_items)`."""
        k = max(KS)
        lists = {}
        batch = 512
        known = [u for u in self.users if self.has_train[u]]
        for s in range(0, len(known), batch):
            us = np.array(known[s:s + batch])
            scores = np.array(score_users(us), dtype=np.float64)
            scores[:, self.unknown_items] = -np.inf
            for row, u in zip(scores, us):
                lists[int(u)] = self.top_k(row, u, k)
        return self.metrics_of_lists(lambda u: lists[u] if u in lists else self.fallback(u),
                                     cold)


# ---------------------------------------------------------------- models


def fit_ease(x, lam):
    g = (x.T @ x).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def ease_scorer(x, b):
    return lambda us: np.asarray(x[us] @ b)


def mf_scorer(model):
    uf = np.asarray(model.user_factors)
    itf = np.asarray(model.item_factors)
    return lambda us: uf[us] @ itf.T


def fit_als(x, factors, reg, alpha, iters, seed):
    m = AlternatingLeastSquares(factors=factors, regularization=reg, alpha=alpha,
                                iterations=iters, random_state=seed, num_threads=2,
                                calculate_training_loss=False)
    m.fit(x, show_progress=False)
    return m


def fit_bpr(x, factors, lr, reg, iters, seed):
    m = BayesianPersonalizedRanking(factors=factors, learning_rate=lr, regularization=reg,
                                    iterations=iters, random_state=seed, num_threads=2)
    m.fit(x, show_progress=False)
    return m


def grids(quick):
    if quick:
        return {
            "EASE": [dict(lam=l, weights=w) for l in (200, 800) for w in ("binary",)],
            "ALS": [dict(factors=64, reg=r, alpha=a, iters=15, weights="binary")
                    for r in (0.1, 10.0) for a in (1.0, 10.0)],
            "BPR": [dict(factors=64, lr=0.003, reg=0.01, iters=300, weights="binary")],
        }
    return {
        "EASE": [dict(lam=l, weights=w) for w in ("binary", "strength")
                 for l in (25, 50, 100, 200, 400, 800, 1600, 3200)],
        "ALS": [dict(factors=f, reg=r, alpha=a, iters=15, weights=w)
                for w in ("binary", "strength")
                for f in (64, 128, 256, 512)
                for r in (1.0, 10.0, 50.0, 200.0, 800.0)
                for a in (1.0, 3.0, 10.0, 30.0)],
        # BPR overfits with many epochs at a high learning rate: the grid covers early
        # stopping through `iters`.
        "BPR": [dict(factors=f, lr=lr, reg=r, iters=it, weights="binary")
                for f in (32, 64, 128)
                for lr in (0.001, 0.003, 0.01)
                for r in (0.001, 0.01, 0.1)
                for it in (30, 100, 300, 1000)],
    }


def fit_and_score(name, p, x_bin, x_str, seed):
    x = x_str if p.get("weights") == "strength" else x_bin
    if name == "EASE":
        return ease_scorer(x, fit_ease(x, p["lam"]))
    if name == "ALS":
        return mf_scorer(fit_als(x, p["factors"], p["reg"], p["alpha"], p["iters"], seed))
    return mf_scorer(fit_bpr(x, p["factors"], p["lr"], p["reg"], p["iters"], seed))


def read_lists(path, data):
    """JSON Lines {"user_id", "items"} → user index → item indices (unknown ids dropped)."""
    out = {}
    with open(path) as f:
        for n, line in enumerate(f, start=1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}: line {n}: {e}")
            u = data.users.get(obj.get("user_id"))
            if u is None:
                continue
            out[u] = [data.items[i] for i in obj.get("items", []) if i in data.items]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", required=True, help="directory with train.tsv and test.tsv")
    ap.add_argument("--lists", action="append", default=[], metavar="NAME=F.jsonl",
                    help="also evaluate these lists (another system's top-K per user)")
    ap.add_argument("--seeds", default="42,1,2")
    ap.add_argument("--quick", action="store_true", help="a small grid (smoke test)")
    ap.add_argument("--skip-peers", action="store_true", help="only evaluate --lists")
    ap.add_argument("--json", help="write every figure to this file")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    print(f"implicit {implicit.__version__}, numpy {np.__version__}", flush=True)

    train_rows = read_split(os.path.join(a.split, "train.tsv"))
    test_rows = read_split(os.path.join(a.split, "test.tsv"))
    d = Data(train_rows, test_rows)
    tu, ti, tv, tt = d.train
    in_train = np.zeros(d.n_items, dtype=bool)
    in_train[ti] = True
    cold = ~in_train
    ev_test = Evaluator(d.n_users, d.n_items, (tu, ti), d.test[:2])
    n_cold_rows = int(cold[d.test[1]].sum())
    print(f"{len(tu)} train / {len(d.test[0])} test rows, {d.n_users} users, {d.n_items} items "
          f"({int(cold.sum())} only in test); {n_cold_rows / len(d.test[0]):.1%} of test rows "
          f"on cold items; {len(ev_test.users)} users evaluated, "
          f"{int((~ev_test.has_train[ev_test.users]).sum())} of them without training rows",
          flush=True)
    report = {"split": a.split, "peers": {}, "lists": {}}

    # Popularity.
    pop = ev_test.metrics_of_lists(ev_test.fallback, cold)
    report["popularity"] = pop
    print(f"popularity: ndcg@10 {pop['ndcg@10']:.4f} recall@20 {pop['recall@20']:.4f}", flush=True)

    for spec in a.lists:
        name, _, path = spec.partition("=")
        lists = read_lists(path, d)
        m = ev_test.metrics_of_lists(
            lambda u, lists=lists: lists[u] if u in lists else ev_test.fallback(u), cold)
        m["users_with_a_list"] = sum(1 for u in ev_test.users if u in lists)
        report["lists"][name] = m
        print(f"lists {name}: ndcg@10 {m['ndcg@10']:.4f} recall@20 {m['recall@20']:.4f} "
              f"cold share of hits@10 {m['cold_hit_share@10']:.3f} @20 "
              f"{m['cold_hit_share@20']:.3f} ({m['users_with_a_list']} users with a list)",
              flush=True)
    if a.skip_peers:
        if a.json:
            with open(a.json, "w") as f:
                json.dump(report, f, indent=1)
        return

    # Validation carve: the last 10 % of train by time.
    order = np.lexsort((np.arange(len(tt)), tt))
    cut = int(round(len(order) * 0.9))
    fit_rows, val_rows = np.sort(order[:cut]), np.sort(order[cut:])
    ev_val = Evaluator(d.n_users, d.n_items, (tu[fit_rows], ti[fit_rows]),
                       (tu[val_rows], ti[val_rows]))
    x_fit = matrix(d.n_users, d.n_items, tu[fit_rows], ti[fit_rows])
    xs_fit = matrix(d.n_users, d.n_items, tu[fit_rows], ti[fit_rows], tv[fit_rows])
    x_all = matrix(d.n_users, d.n_items, tu, ti)
    xs_all = matrix(d.n_users, d.n_items, tu, ti, tv)

    for name, grid in grids(a.quick).items():
        t0 = time.time()
        best = None
        for p in grid:
            m = ev_val.metrics(fit_and_score(name, p, x_fit, xs_fit, seeds[0]))
            if best is None or m["ndcg@10"] > best[1]["ndcg@10"]:
                best = (p, m)
        p, vm = best
        runs = []
        for seed in (seeds if name != "EASE" else seeds[:1]):
            t1 = time.time()
            m = ev_test.metrics(fit_and_score(name, p, x_all, xs_all, seed), cold)
            m["fit_and_eval_seconds"] = time.time() - t1
            runs.append(m)
        keys = ["ndcg@10", "recall@20", "recall@10", "ndcg@20", "hit_rate@10"]
        summary = {k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs])))
                   for k in keys}
        report["peers"][name] = {"best": p, "grid_points": len(grid), "validation": vm,
                                 "test_runs": runs, "test": summary,
                                 "tuning_seconds": time.time() - t0}
        print(f"{name}: best {p} (validation ndcg@10 {vm['ndcg@10']:.4f}, {len(grid)} points, "
              f"{time.time() - t0:.0f} s); test ndcg@10 {summary['ndcg@10'][0]:.4f} ± "
              f"{summary['ndcg@10'][1]:.4f}, recall@20 {summary['recall@20'][0]:.4f} ± "
              f"{summary['recall@20'][1]:.4f} over {len(runs)} seed(s)", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
