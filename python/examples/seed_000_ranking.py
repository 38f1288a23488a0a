"""Seed 000 from Python: the ranking stage on MovieLens 100k.

User and movie embeddings (64-d) → dense 256-64-1, mean squared error, Adagrad 0.1,
batch 8192, 10 epochs, an 80/20 split with seed 42; then predicted ratings of a few
films for one user.

    python examples/seed_000_ranking.py [DATASET]     # default: ml-100k (cached)
"""

import os
import sys
import time

try:
    import pandas  # noqa: F401  (the examples show DataFrames)
except ImportError:
    sys.exit("this example needs pandas: pip install pandas")

import shortlist

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs")

t0 = time.perf_counter()
data = shortlist.Dataset.open(sys.argv[1]) if len(sys.argv) > 1 else shortlist.datasets.movielens("ml-100k")
train, test = data.split(ratio=0.8, seed=42)

# The TFRS tutorial's configuration, with seed 000's 64-d embeddings and 10 epochs.
model = shortlist.Ranking(config=os.path.join(CONFIGS, "ranking-tfrs.toml"), embedding_dim=64, epochs=10)
model.fit(train, test, progress=False)
print(f"test RMSE {model.evaluate(test)['rmse']:.4f}  (seed 000: 0.984)")

# Predicted ratings of a few films for one user, best first.
titles = data.features("item")
user = "42" if "42" in set(train.to_pandas()["user_id"]) else train.to_pandas()["user_id"][0]
films = list(titles.index[:5])
scores = model.predict([user] * len(films), films)
name = titles["title"] if "title" in titles.columns else titles.index.to_series()
for film, score in sorted(zip(films, scores), key=lambda p: -p[1]):
    print(f"  {score:.2f}  {name[film]}")
print(f"({time.perf_counter() - t0:.1f} s)")
