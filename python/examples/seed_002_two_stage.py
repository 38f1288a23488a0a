"""Seed 002 from Python: retrieval, then ranking, then serving, on MovieLens.

A two-tower retrieval model (in-batch softmax) measured with recall, NDCG and
factorized top-K accuracy over all movies; a ranking model on the same split;
the two together as the server's pipeline (retrieve 100, rank, top 10); both saved
as the next version under OUT for `shortlist serve`.

Both models use the seed's own hyper-parameters, the TFRS tutorials' (32-d id
embeddings, Adagrad 0.1, batch 8192, 3 epochs: configs/retrieval-tfrs.toml and
configs/ranking-tfrs.toml), which train in a few seconds. `--defaults` trains the
shipped defaults instead (the quickstart's models: history-aware towers, an ensemble
ranking model with AutoRec and a relevance head; better lists, about 20× the CPU).

    python examples/seed_002_two_stage.py [--defaults] [DATASET [OUT]]   # ml-100k, models/py-movielens
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
defaults = "--defaults" in sys.argv
args = [a for a in sys.argv[1:] if a != "--defaults"]

t0 = time.perf_counter()
data = shortlist.Dataset.open(args[0]) if args else shortlist.datasets.movielens("ml-100k")
out = args[1] if len(args) > 1 else "models/py-movielens"
train, test = data.split(ratio=0.8, seed=42)

seed_config = {} if defaults else {"config": os.path.join(CONFIGS, "retrieval-tfrs.toml")}
retrieval = shortlist.Retrieval(**seed_config).fit(train, test, progress=False)
r = retrieval.report_
print(f"retrieval: recall@10 {r['recall@10']:.4f}  ndcg@10 {r['ndcg@10']:.4f}  "
      f"top-100 accuracy {r['top_k_accuracy@100']:.4f}  (popularity: recall@10 {r['popularity']['recall@10']:.4f})")

seed_config = {} if defaults else {"config": os.path.join(CONFIGS, "ranking-tfrs.toml")}
ranking = shortlist.Ranking(**seed_config).fit(train, test, progress=False)
print(f"ranking: test RMSE {ranking.report_['rmse']:.4f}  ({ranking.report_['model']})")

pipeline = shortlist.Pipeline(retrieval, ranking)
user = "42" if "42" in set(train.to_pandas()["user_id"]) else train.to_pandas()["user_id"][0]
print(pipeline.recommend([user], k=10, num_candidates=100)[["rank", "predicted_rating", "title"]]
      .to_string(index=False))

paths = pipeline.save(out)
print(f"saved {paths['retrieval']} and {paths['ranking']}; serve them with")
print(f"  shortlist serve --model-base-path {out} --port 8501")
print(f"  curl -s -d '{{\"user_id\": \"{user}\", \"k\": 10}}' http://localhost:8501/v1/recommend")
print(f"({time.perf_counter() - t0:.1f} s)")
