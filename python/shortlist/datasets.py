"""Public datasets, fetched and cached exactly as ``shortlist data fetch`` does."""

from __future__ import annotations

from ._data import Dataset

#: The MovieLens datasets ``shortlist`` knows by name.
MOVIELENS = ("ml-100k", "ml-1m", "ml-latest-small", "ml-25m")


def movielens(name: str = "ml-100k", *, progress: bool = True, duplicates: str = "keep-all") -> Dataset:
    """A MovieLens dataset with its titles and side features.

    Fetched on first use into ``$SHORTLIST_HOME/datasets/<name>`` (default
    ``~/.cache/shortlist``): GroupLens' zip checked against its SHA-256, or for
    ``ml-100k`` the pip fallback; the same cache the CLI uses, so a dataset the
    CLI fetched is not fetched again.
    """
    if name not in MOVIELENS:
        raise ValueError(f"unknown MovieLens dataset {name!r}; expected one of {', '.join(MOVIELENS)}")
    return Dataset.open(name, progress=progress, duplicates=duplicates)
