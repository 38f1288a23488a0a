"""New users from a few interactions (issue 12's cold-user target), on split42.

    python bench/cold_users.py [SPLIT_DIR] [BASE] [--seed S] [--n 5,10] [--peers]

BASE holds a served pipeline (`BASE/retrieval/N`, `BASE/ranking/N`); when it has none,
the default models are trained into it with the CLI first (`shortlist train retrieval`
and `train ranking` on SPLIT_DIR/train.tsv, seed S), as a user would.

Every test user becomes a new user: an id the models never saw, with only their first
N training interactions (by timestamp) given as `history`, through
`Pipeline.recommend` (the same function as `POST /v1/recommend`, k = 20, 100
candidates). Two ways to score the list, each beside popularity scored the same way:

* **test items**: the user's other training items are excluded from the list as a
  business rule (`exclude_items`) and hits are the user's test items: the lists are
  then comparable with the same users served with their full training history
  (`eval --pipeline`'s protocol), printed as the next-to-last row. The last row sends
  the same users as unknown ids with their whole training history: a user whose
  history is their whole past rather than the start of it.
* **the rest of the user's items**: only the history is excluded, and hits are every
  item the user interacted with beyond it (the remaining training items and the test
  items): what a service that knows nothing else about the user would be judged on.

NDCG@10 (binary gain) and Recall@20 as in the README, averaged over the users who
have more than N training items and at least one test item.

`--peers` adds item-based peers fed the same N items, scored the same ways: EASE
(fitted on all of train.tsv, λ 400 as the pipeline's head and λ 1600) and item–item
cosine similarity, each alone and blended with popularity (z-scores per user, weight 1).

needs: the shortlist package (pip install ./python), numpy, pandas.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd

import shortlist

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
K = 20
DISC = 1.0 / np.log2(np.arange(K) + 2.0)


def arg(name, default):
    """The value after flag `name` as integers (`--n 5,10`), or `default`."""
    text = default
    if name in sys.argv:
        at = sys.argv.index(name)
        if at + 1 >= len(sys.argv):
            sys.exit(f"{name}: expected a value")
        text = sys.argv[at + 1]
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        sys.exit(f"{name}: expected whole numbers separated by commas, got {text!r}")
    if any(v < 1 for v in values):
        sys.exit(f"{name}: expected numbers of at least 1, got {text!r}")
    return values


def quality(lists, relevant):
    """Mean NDCG@10 and Recall@20 of `lists` (user → items, best first)."""
    ndcg, recall = [], []
    for u, rel in relevant.items():
        hits = np.array([i in rel for i in lists.get(u, [])[:K]] + [False] * K)[:K]
        recall.append(hits.sum() / len(rel))
        ndcg.append((hits[:10] * DISC[:10]).sum() / DISC[: min(10, len(rel))].sum())
    return float(np.mean(ndcg)), float(np.mean(recall))


def peer_rows(n, users, given, history, tested, train, popular):
    """Rows of the item-based peers for histories of `n` items (dense: ML-100k size)."""
    items = sorted(set(train["item_id"]))
    col = {i: c for c, i in enumerate(items)}
    x = np.zeros((len(set(train["user_id"])), len(items)), np.float64)
    row = {u: r for r, u in enumerate(sorted(set(train["user_id"])))}
    x[train["user_id"].map(row).to_numpy(), train["item_id"].map(col).to_numpy()] = 1.0
    gram = x.T @ x
    h = np.zeros((len(users), len(items)))
    for r, u in enumerate(users):
        h[r, [col[i] for i in given[u]]] = 1.0
    log_pop = np.log1p(x.sum(0))

    def z(s):
        return (s - s.mean(1, keepdims=True)) / (s.std(1, keepdims=True) + 1e-12)

    scorers = {}
    for lam in (400, 1600):
        p = np.linalg.inv(gram + lam * np.eye(len(items)))
        b = -p / np.diag(p)
        np.fill_diagonal(b, 0.0)
        scorers[f"EASE λ {lam}"] = h @ b
    d = np.sqrt(np.diag(gram))
    cos = gram / (np.outer(d, d) + 1e-12)
    np.fill_diagonal(cos, 0.0)
    scorers["item cosine"] = h @ cos
    for name in list(scorers):
        scorers[f"{name} + popularity"] = z(scorers[name]) + z(np.tile(log_pop, (len(users), 1)))
    out = []
    for name, scores in scorers.items():
        for scored_on, excluded_of, rel in (
                ("test items", lambda u: history[u], lambda u: tested[u]),
                ("the rest of the user's items", lambda u: given[u], lambda u: tested[u] | set(history[u][n:]))):
            lists = {}
            for r, u in enumerate(users):
                s = scores[r].copy()
                s[[col[i] for i in excluded_of(u)]] = -np.inf
                lists[u] = [items[j] for j in np.argsort(-s, kind="stable")[:K]]
            rels = {u: rel(u) for u in users}
            pop = {u: [i for i in popular if i not in set(excluded_of(u))][:K] for u in users}
            ours, base_q = quality(lists, rels), quality(pop, rels)
            out.append((n, f"{scored_on} ({name})", len(users), ours, base_q, ours[0] / base_q[0]))
    return out


def train_base(split, base, seed):
    binary = os.environ.get("SHORTLIST_BIN", os.path.join(ROOT, "target", "release", "shortlist"))
    common = ["--train", f"{split}/train.tsv", "--test", f"{split}/test.tsv", "--data", "ml-100k",
              "--seed", str(seed), "-q"]
    for stage in ("retrieval", "ranking"):
        t = time.perf_counter()
        subprocess.run([binary, "train", stage, *common, "--out", f"{base}/{stage}/1"], check=True,
                       stdout=subprocess.DEVNULL)
        print(f"trained {stage} in {time.perf_counter() - t:.1f} s", flush=True)


def main():
    pos = [a for k, a in enumerate(sys.argv[1:], 1)
           if not a.startswith("--") and sys.argv[k - 1] not in ("--seed", "--n")]
    split = pos[0] if pos else os.path.join(ROOT, "..", "shared", "data", "ml-100k-split42")
    base = pos[1] if len(pos) > 1 else os.path.join(ROOT, "target", "cold-users")
    seed = arg("--seed", "42")[0]
    sizes = arg("--n", "5,10")
    if not os.path.isdir(os.path.join(base, "ranking")):
        train_base(split, base, seed)
    pipeline = shortlist.Pipeline.load(base)

    read = dict(sep="\t", dtype={"user_id": str, "item_id": str})
    train = pd.read_csv(os.path.join(split, "train.tsv"), **read)
    test = pd.read_csv(os.path.join(split, "test.tsv"), **read)
    # Each user's training items in time order (ties: file order).
    train = train.assign(row=np.arange(len(train))).sort_values(["user_id", "timestamp", "row"])
    history = train.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()
    tested = test.groupby("user_id")["item_id"].agg(set).to_dict()
    popular = train["item_id"].value_counts(sort=True)
    popular = list(popular.index[np.lexsort((np.arange(len(popular)), -popular.to_numpy()))])

    def most_popular(excluded):
        return [i for i in popular if i not in excluded][:K]

    known = pipeline.recommend(list(tested), k=K)
    full = known.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()
    rows = []
    for n in sizes:
        users = [u for u in tested if len(history.get(u, ())) > n]
        given = {u: history[u][:n] for u in users}
        t = time.perf_counter()
        lists_a, lists_b = {}, {}
        for u in users:
            rest = history[u][n:]
            cold = f"cold-user:{u}"
            a = pipeline.recommend([cold], k=K, history={cold: given[u]}, exclude_items=rest)
            b = pipeline.recommend([cold], k=K, history={cold: given[u]})
            lists_a[u], lists_b[u] = a["item_id"].tolist(), b["item_id"].tolist()
        per_call = (time.perf_counter() - t) / (2 * len(users)) * 1e3
        paths = set(a["order_by"]) | set(b["order_by"])
        rel_a = {u: tested[u] for u in users}
        rel_b = {u: tested[u] | set(history[u][n:]) for u in users}
        pop_a = {u: most_popular(set(history[u])) for u in users}
        pop_b = {u: most_popular(set(given[u])) for u in users}
        for name, lists, pop, rel in (("test items", lists_a, pop_a, rel_a),
                                      ("the rest of the user's items", lists_b, pop_b, rel_b)):
            ours, base_q = quality(lists, rel), quality(pop, rel)
            rows.append((n, f"{name} (served pipeline)", len(users), ours, base_q, ours[0] / base_q[0]))
        print(f"history of {n}: {len(users)} users, {per_call:.2f} ms per request (order_by: "
              f"{', '.join(sorted(map(str, paths)))})", flush=True)
        if "--peers" in sys.argv:
            rows.extend(peer_rows(n, users, given, history, tested, train, popular))
    full_q = quality(full, tested)
    # The same users sent as unknown ids with their whole training history.
    whole = {}
    for u in tested:
        cold = f"cold-user:{u}"
        got = pipeline.recommend([cold], k=K, history={cold: history.get(u, [])})
        whole[u] = got["item_id"].tolist()
    whole_q = quality(whole, tested)

    print("\n| history | scored on (list) | users | list NDCG@10 / Recall@20 | popularity "
          "NDCG@10 / Recall@20 | NDCG@10 ratio |")
    print("| --- | --- | ---: | --- | --- | ---: |")
    for n, name, count, ours, pop, ratio in rows:
        print(f"| first {n} | {name} | {count} | {ours[0]:.4f} / {ours[1]:.4f} | "
              f"{pop[0]:.4f} / {pop[1]:.4f} | {ratio:.2f}× |")
    print(f"| all training items (known user) | test items | {len(tested)} | "
          f"{full_q[0]:.4f} / {full_q[1]:.4f} | | |")
    print(f"| all training items (unknown user, as history) | test items | {len(tested)} | "
          f"{whole_q[0]:.4f} / {whole_q[1]:.4f} | | |")


if __name__ == "__main__":
    main()
