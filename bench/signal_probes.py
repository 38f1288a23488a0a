#!/usr/bin/env python3
"""Probes for signals the served pipeline does not use yet, on a user/item/timestamp split.

Each probe scores every test user's full ranking (training items excluded, NDCG@10 with
the README's definitions) from a dense numpy model, alone and blended with EASE (and
implicit's ALS) by z-scores per user, and prints the figures. It answers "is there signal
left?" for issue 11 (known users) and issue 12 (new users from their first N training
items): the probes are scored on the test file, so every figure is an upper bound for a
setting chosen on it.

    python bench/signal_probes.py ../shared/data/ml-100k-split42 [--cold 5,10]

Needs numpy, pandas, scipy and implicit; about 5 s on 2 cores for ML-100k.
"""
import argparse

import numpy as np
import pandas as pd
import scipy.sparse as sp

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("split", help="directory with train.tsv and test.tsv")
ap.add_argument("--cold", default="5,10", help="history lengths of the new-user probes")
args = ap.parse_args()

tr = pd.read_csv(f"{args.split}/train.tsv", sep="\t")
te = pd.read_csv(f"{args.split}/test.tsv", sep="\t")
users = np.union1d(tr.user_id.unique(), te.user_id.unique())
items = np.union1d(tr.item_id.unique(), te.item_id.unique())
ui = {u: k for k, u in enumerate(users)}
ii = {i: k for k, i in enumerate(items)}
nu, ni = len(users), len(items)
tr_u, tr_i, tr_t = tr.user_id.map(ui).values, tr.item_id.map(ii).values, tr.timestamp.values
X = np.zeros((nu, ni), np.float32)
X[tr_u, tr_i] = 1
day = ((tr_t - tr_t.min()) // 86400).astype(int)
nd = day.max() + 1
C = np.zeros((nd, ni), np.float32)  # interactions per day and item
np.add.at(C, (day, tr_i), 1)
test = {}
for u, i in zip(te.user_id.map(ui).values, te.item_id.map(ii).values):
    test.setdefault(u, []).append(i)
discount = 1 / np.log2(np.arange(2, 12))


def ndcg(S, k=10):
    """Mean NDCG@k over test users; training items excluded."""
    S = np.where(X > 0, -np.inf, S)
    top = np.argpartition(-S, k, axis=1)[:, :k]
    total = 0.0
    for u, its in test.items():
        t = top[u][np.argsort(-S[u, top[u]])]
        total += (np.isin(t, its) * discount).sum() / discount[: min(k, len(its))].sum()
    return round(float(total / len(test)), 4)


def z(S):
    return (S - S.mean(1, keepdims=True)) / (S.std(1, keepdims=True) + 1e-9)


def smooth_days(M, w):
    k = np.exp(-0.5 * (np.arange(-3 * w, 3 * w + 1) / w) ** 2)
    return np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, M)


G = X.T @ X
P = np.linalg.inv(G + 400 * np.eye(ni))
E = X @ (np.eye(ni) - P / np.diag(P))  # EASE, λ 400 (the diagonal of B is 0)
from implicit.als import AlternatingLeastSquares  # noqa: E402

als = AlternatingLeastSquares(factors=64, regularization=50, alpha=10, iterations=15, random_state=1)
als.fit(sp.csr_matrix(X), show_progress=False)
A = np.asarray(als.user_factors) @ np.asarray(als.item_factors).T
pop = np.log1p(X.sum(0))[None, :].repeat(nu, 0)
base = z(E) + z(A)
print(f"known users: popularity {ndcg(pop)}, EASE λ400 {ndcg(E)}, ALS {ndcg(A)}, EASE+ALS {ndcg(base)}")

# Time-local popularity: interactions of each item on the user's active days, smoothed.
U = np.zeros((nu, nd), np.float32)
np.add.at(U, (tr_u, day), 1)
for w in [3, 10, 30]:
    T = np.log1p(smooth_days(U, w) @ C / np.maximum(U.sum(1, keepdims=True), 1))
    print(f"  time-local popularity (±{w} days): alone {ndcg(T)}, EASE+ALS+a·it {[ndcg(base + a * z(T)) for a in (0.1, 0.3)]}")

# Sequence neighbours: items rated within K positions of each other by the same user.
order = np.lexsort((tr_i, tr_t, tr_u))
su, si = tr_u[order], tr_i[order]
W = np.zeros((ni, ni), np.float32)
for k in range(1, 4):
    same = su[k:] == su[:-k]
    np.add.at(W, (si[k:][same], si[:-k][same]), 1.0 / k)
    np.add.at(W, (si[:-k][same], si[k:][same]), 1.0 / k)
deg = W.sum(1) + 1e-9
Q = X @ (W / np.sqrt(np.outer(deg, deg)))
print(f"  sequence neighbours (3 positions, cosine): alone {ndcg(Q)}, EASE+ALS+a·it {[ndcg(base + a * z(Q)) for a in (0.2, 0.5)]}")

# User-based neighbours (cosine, 50 nearest users).
Xn = X / np.sqrt(X.sum(1, keepdims=True) + 1e-9)
Su = Xn @ Xn.T
np.fill_diagonal(Su, 0)
Su[Su < -np.sort(-Su, 1)[:, 49:50]] = 0
Uk = Su @ X
print(f"  user kNN (50 users): alone {ndcg(Uk)}, EASE+ALS+a·it {[ndcg(base + a * z(Uk)) for a in (0.2, 0.5)]}")

# RP3beta (random walk item–item, popularity-discounted).
Pui = X / (X.sum(1, keepdims=True) + 1e-9)
Piu = X.T / (X.T.sum(1, keepdims=True) + 1e-9)
for beta in [0.5, 0.7]:
    R = X @ ((Piu @ Pui) / (X.sum(0) + 1e-9)[None, :] ** beta)
    print(f"  RP3beta β {beta}: alone {ndcg(R)}, EASE+ALS+a·it {[ndcg(base + a * z(R)) for a in (0.3, 1.0)]}")

# Availability: items nobody had rated before the user's last training activity.
first = np.full(ni, np.inf)
np.minimum.at(first, tr_i, tr_t)
last = np.zeros(nu)
np.maximum.at(last, tr_u, tr_t)
late = first[None, :] > last[:, None]
print(f"  items first rated after the user's last activity demoted ({late.mean():.1%} of pairs): EASE+ALS {ndcg(np.where(late, base - 5, base))}")

# New users: only the first N training items (and their days) are known.
Xc = X / np.sqrt(X.sum(0, keepdims=True) + 1e-9)
Cos = Xc.T @ Xc
np.fill_diagonal(Cos, 0)
srt = tr.assign(u=tr_u, i=tr_i, d=day).sort_values(["u", "timestamp", "i"])
for n in [int(x) for x in args.cold.split(",") if x]:
    first_n = srt.groupby("u").head(n)
    H = np.zeros((nu, ni), np.float32)
    H[first_n.u.values, first_n.i.values] = 1
    Hd = np.zeros((nu, nd), np.float32)
    np.add.at(Hd, (first_n.u.values, first_n.d.values), 1)
    cos = H @ Cos
    p = ndcg(pop)
    line = f"new users from {n} items: popularity {p}, cosine {ndcg(cos)}, cosine+popularity {ndcg(z(cos) + z(pop))}"
    for w in [10, 30]:
        T = np.log1p(smooth_days(Hd, w) @ C / np.maximum(Hd.sum(1, keepdims=True), 1e-9))
        best = max(ndcg(z(cos) + a * z(T)) for a in (0.25, 0.5, 1.0))
        line += f"; time-local popularity (±{w} days) {ndcg(T)}, cosine+it best {best} ({best / p:.2f}× popularity)"
    print(line)
