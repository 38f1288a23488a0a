"""Datasets: load, build from pandas, split, convert back."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from . import _shortlist

PathLike = Union[str, "os.PathLike[str]"]


def _pandas():
    try:
        import pandas as pd  # noqa: F401
    except ImportError:  # pragma: no cover - exercised only without pandas
        return None
    return pd


class Dataset:
    """Interactions (user, item, rating, timestamp) and side features.

    A ``Dataset`` is a whole log or one part of it: ``train, test = ds.split()``
    returns two parts that share the dataset's ids and features, as the CLI's
    ``train.tsv`` / ``test.tsv`` do once loaded together. Fit on one part,
    evaluate on another.

    Build one with :meth:`from_pandas`, :meth:`from_schema`, :meth:`open`
    (any path or dataset name the ``shortlist`` CLI reads),
    :meth:`from_split_files` or :func:`shortlist.datasets.movielens`.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: "_shortlist.Dataset"):
        self._raw = raw

    # ---------------------------------------------------------------- loading
    @classmethod
    def open(
        cls,
        spec: PathLike,
        *,
        skip_bad_rows: bool = False,
        duplicates: str = "keep-all",
        progress: bool = True,
    ) -> "Dataset":
        """Load a dataset name (``ml-100k``…, fetched into the cache) or a path
        (schema TOML, split file, MovieLens or RecBole directory, interaction
        file), exactly as ``shortlist data info SPEC`` does.

        ``duplicates``: ``keep-all``, ``keep-last`` or ``average`` for repeated
        (user, item) pairs. Errors name the file, line and column
        (``ValueError``; ``FileNotFoundError`` for a missing path).
        """
        return cls(
            _shortlist.Dataset.open(
                os.fspath(spec),
                skip_bad_rows=skip_bad_rows,
                duplicates=duplicates,
                progress=progress,
            )
        )

    @classmethod
    def from_schema(cls, path: PathLike, **kwargs: Any) -> "Dataset":
        """Load an interaction log described by a schema TOML (see the README's
        *Datasets* section): the same loader as ``shortlist data info schema.toml``."""
        return cls.open(path, **kwargs)

    @classmethod
    def from_split_files(
        cls,
        train: PathLike,
        test: PathLike,
        data: Optional[str] = None,
        *,
        progress: bool = True,
    ) -> Tuple["Dataset", "Dataset"]:
        """Load ``train.tsv`` and ``test.tsv`` (the split-file contract) as
        ``shortlist train --train … --test … [--data DATA]`` does: two parts of one
        dataset. ``data`` joins titles and side features by raw id."""
        a, b = _shortlist.Dataset.load_split(
            os.fspath(train), os.fspath(test), data, progress=progress
        )
        return cls(a), cls(b)

    @classmethod
    def from_pandas(
        cls,
        df: Any,
        user: str = "user_id",
        item: str = "item_id",
        rating: Optional[str] = None,
        timestamp: Optional[str] = None,
        *,
        item_features: Any = None,
        user_features: Any = None,
        item_title: Optional[str] = None,
        feature_types: Optional[Dict[str, str]] = None,
        name: str = "pandas",
    ) -> "Dataset":
        """A dataset from a DataFrame of interactions.

        ``user`` and ``item`` name the id columns (any values: converted with
        ``str``); ``rating`` a numeric column (``None``: implicit feedback, every
        row counts 1); ``timestamp`` integer Unix seconds (or datetimes).

        ``item_features`` / ``user_features``: DataFrames with one row per id,
        the id in the column named like ``item`` / ``user`` or in the index.
        Column types are inferred (numbers → ``numeric``, lists → ``multi-categorical``,
        other values → ``categorical``) unless ``feature_types`` names them
        (``{"title": "text"}``). ``item_title`` names the item column shown as
        the title in recommendations.
        """
        for col in (user, item, rating, timestamp):
            if col is not None and col not in df.columns:
                raise ValueError(
                    f"column {col!r} is not in the DataFrame; it has: {', '.join(map(str, df.columns))}"
                )
        for col in (user, item):
            missing = df[col].isna().to_numpy()
            if missing.any():
                row = int(missing.argmax())
                raise ValueError(f"column {col!r}, row {row}: missing id")
        users = [str(u) for u in df[user].tolist()]
        items = [str(i) for i in df[item].tolist()]
        ratings = None
        if rating is not None:
            try:
                ratings = np.ascontiguousarray(df[rating].to_numpy(dtype=np.float32))
            except (TypeError, ValueError) as e:
                raise ValueError(f"column {rating!r}: expected numbers ({e})") from None
        stamps = None
        if timestamp is not None:
            stamps = _timestamps(df[timestamp], timestamp)
        types = feature_types or {}
        raw = _shortlist.Dataset.from_columns(
            users,
            items,
            ratings,
            stamps,
            name=name,
            user_features=_features(user_features, user, types, "user_features"),
            item_features=_features(item_features, item, types, "item_features"),
            item_title=item_title,
        )
        return cls(raw)

    # ---------------------------------------------------------------- parts
    def split(
        self,
        method: str = "random",
        ratio: float = 0.8,
        seed: int = 42,
        n: int = 1,
    ) -> Tuple["Dataset", "Dataset"]:
        """``(train, test)`` as ``shortlist data split`` makes them: ``random``
        (a ``ratio`` of all interactions in train, permuted with ``seed``),
        ``temporal`` (the earliest ``ratio``) or ``leave-last-out`` (each user's
        last ``n``). The same rows for the same seed on every platform."""
        a, b = self._raw.split(method=method, ratio=ratio, seed=seed, n=n)
        return Dataset(a), Dataset(b)

    # ---------------------------------------------------------------- export
    def to_pandas(self) -> Any:
        """The interactions as a DataFrame ``user_id, item_id, rating[, timestamp]``
        (raw ids as strings). Without pandas: a dict of numpy arrays."""
        users, items, ratings, stamps = self._raw.columns()
        cols = {
            "user_id": np.asarray(users, dtype=object),
            "item_id": np.asarray(items, dtype=object),
            "rating": ratings,
        }
        if stamps is not None:
            cols["timestamp"] = stamps
        pd = _pandas()
        return pd.DataFrame(cols) if pd is not None else cols

    def features(self, of: str = "item") -> Any:
        """Side features of the users (``of="user"``) or items as a DataFrame
        indexed by raw id (a dict of lists without pandas)."""
        ids, cols = self._raw.features(of)
        pd = _pandas()
        if pd is None:
            return {"id": ids, **cols}
        return pd.DataFrame(cols, index=pd.Index(ids, name=f"{of}_id"))

    def to_tsv(self, path: PathLike) -> None:
        """Write these interactions as a split file (``user_id item_id rating
        timestamp``), the format every ``shortlist`` command accepts."""
        self._raw.to_tsv(os.fspath(path))

    @property
    def name(self) -> str:
        """The dataset's name (``ml-100k``, a path, ``pandas``)."""
        return self._raw.name

    @property
    def num_users(self) -> int:
        """Users of the whole dataset (the parts of a split share them)."""
        return self._raw.num_users

    @property
    def num_items(self) -> int:
        """Items of the whole dataset."""
        return self._raw.num_items

    @property
    def explicit(self) -> bool:
        """Whether ratings are explicit scores (else implicit feedback)."""
        return self._raw.explicit

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return repr(self._raw)


def _timestamps(col: Any, name: str) -> np.ndarray:
    kind = getattr(col.dtype, "kind", "O")
    if kind == "M":  # datetimes → Unix seconds
        values = col.to_numpy(dtype="datetime64[s]").astype(np.int64)
    else:
        try:
            values = col.to_numpy(dtype=np.int64)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"column {name!r}: expected integer Unix seconds or datetimes ({e})"
            ) from None
    return np.ascontiguousarray(values)


def _infer_type(values: list) -> str:
    for v in values:
        if v is None:
            continue
        if isinstance(v, (list, tuple, set, np.ndarray)):
            return "multi-categorical"
        if isinstance(v, (bool, np.bool_)):
            return "categorical"
        if isinstance(v, (int, float, np.integer, np.floating)):
            return "numeric"
        return "categorical"
    return "categorical"


def _features(df: Any, id_col: str, types: Dict[str, str], arg: str):
    if df is None:
        return None
    if id_col in df.columns:
        ids = df[id_col].tolist()
        df = df.drop(columns=[id_col])
    else:
        ids = list(df.index)
    ids = [str(i) for i in ids]
    cols = []
    for name in df.columns:
        values = df[name].tolist()
        kind = types.get(name) or _infer_type(values)
        if kind == "numeric":
            values = [float("nan") if v is None else float(v) for v in values]
        elif kind == "multi-categorical":
            values = [[] if v is None or (isinstance(v, float) and np.isnan(v)) else [str(x) for x in v] for v in values]
        else:
            values = ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
        cols.append((str(name), kind, values))
    return (ids, cols)
