"""shortlist from Python: the Rust recommender's datasets, models and artifacts.

>>> import shortlist
>>> data = shortlist.datasets.movielens("ml-100k")
>>> train, test = data.split(ratio=0.8, seed=42)
>>> retrieval = shortlist.Retrieval().fit(train, test)
>>> ranking = shortlist.Ranking().fit(train, test)
>>> retrieval.evaluate(test)["recall@10"], ranking.evaluate(test)["rmse"]
>>> shortlist.Pipeline(retrieval, ranking).recommend(["42"], k=10)

Every call runs the same Rust functions as the ``shortlist`` command (same
loading, splits, training, metrics and saved files), so ``model.save(dir)`` writes
a directory ``shortlist serve`` serves, and ``shortlist.load(dir)`` reads what the
CLI trained. Errors carry the CLI's messages (``ValueError`` for bad input,
``FileNotFoundError`` for missing paths).
"""

from . import datasets
from ._data import Dataset
from ._models import EASE, IALS, Pipeline, Ranking, Retrieval, load
from ._shortlist import __version__

__all__ = [
    "Dataset",
    "EASE",
    "IALS",
    "Pipeline",
    "Ranking",
    "Retrieval",
    "datasets",
    "load",
    "__version__",
]
