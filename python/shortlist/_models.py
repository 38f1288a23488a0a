"""Estimators: Retrieval, Ranking, EASE, IALS; Pipeline; load."""

from __future__ import annotations

import copy
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Union

import numpy as np

from . import _shortlist
from ._data import Dataset, PathLike, _pandas

ConfigLike = Union[None, Dict[str, Any], str, "os.PathLike[str]"]

# Overrides that map to the CLI's flags (--epochs, --batch-size, --seed) rather
# than to configuration keys: `--epochs` on a ranking model also scales the
# AutoRec's epochs, exactly as the CLI does.
_FLAGS = ("epochs", "batch_size", "seed")


def _merge(base: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _ids(values: Any) -> Any:
    """Ids as the extension takes them: a list (of ``str``, or of values whose
    ``str()`` is the id) or a 1-d numpy int64 array (integer arrays and Series)."""
    if isinstance(values, (str, bytes, int, np.integer)):
        return [values]
    if isinstance(values, list):
        return values
    arr = getattr(values, "dtype", None) is not None and getattr(values, "ndim", 1) == 1
    if arr and values.dtype.kind in "iu":
        return np.ascontiguousarray(values, dtype=np.int64)
    if arr and hasattr(values, "tolist"):
        # numpy and pandas: the elements as Python objects (an object column's
        # own str objects).
        return values.tolist()
    if isinstance(values, (dict, set, frozenset)):
        # Not a sequence of ids (a mapping's keys, an unordered set): the extension
        # refuses it, naming the parameter and the type.
        return values
    return list(values)


class _TqdmProgress:
    """Draws the training's progress with tqdm (when it is installed; else nothing):
    the extension calls it as ``(phase, label, total, done)`` from the thread that
    waits for the fit, every 100 ms while something changed."""

    def __init__(self) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self._tqdm = tqdm
        self.available = tqdm is not None
        self._bar = None
        self._phase = 0

    def __call__(self, phase: int, label: str, total: Optional[int], done: int) -> None:
        if phase != self._phase:
            self.close()
            self._bar = self._tqdm(total=total, desc=label, leave=False)
            self._phase = phase
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _Estimator:
    """Shared surface of the models (see the subclasses)."""

    _kind: str = ""

    def __init__(self, config: ConfigLike = None, **overrides: Any):
        self.config = config
        self.overrides = overrides
        self._model: Optional[_shortlist.Model] = None
        #: The report of :meth:`fit` (what ``shortlist train … --json`` prints).
        self.report_: Optional[Dict[str, Any]] = None

    # ------------------------------------------------------------ configuration
    def get_config(self) -> Dict[str, Any]:
        """The configuration :meth:`fit` will use, as a dict (the TOML file's
        contents; ``epochs``/``batch_size``/``seed`` overrides included)."""
        if self._model is not None:
            return json.loads(_shortlist.toml_to_json(self._model.config_toml, "config.toml"))
        cfg = self._base_config()
        return _merge(cfg, self.overrides)

    def _base_config(self) -> Dict[str, Any]:
        c = self.config
        if isinstance(c, dict):
            return copy.deepcopy(c)
        if c is None:
            text, label = _shortlist.default_config(self._kind), "<default config>"
        else:
            path = os.fspath(c)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                raise FileNotFoundError(f"config {path}: no such file") from None
            label = path
        return json.loads(_shortlist.toml_to_json(text, label))

    def _config_args(self) -> Dict[str, Any]:
        flags = {k: self.overrides[k] for k in _FLAGS if k in self.overrides}
        rest = {k: v for k, v in self.overrides.items() if k not in _FLAGS}
        c = self.config
        if c is not None and not isinstance(c, dict) and not os.path.isfile(os.fspath(c)):
            raise FileNotFoundError(f"config {os.fspath(c)}: no such file")
        if not rest and not isinstance(c, dict):
            # A file (or the default) as is: errors name the file and line.
            return dict(flags, config=None if c is None else os.fspath(c))
        cfg = _merge(self._base_config(), rest)
        return dict(flags, config_text=_shortlist.config_to_toml(json.dumps(cfg)))

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        """scikit-learn convention: the constructor's arguments."""
        return dict(config=self.config, **self.overrides)

    def set_params(self, **params: Any) -> "_Estimator":
        """scikit-learn convention: change constructor arguments."""
        if "config" in params:
            self.config = params.pop("config")
        self.overrides.update(params)
        return self

    # ------------------------------------------------------------ fit / eval
    def fit(self, train: Dataset, valid: Optional[Dataset] = None, progress: bool = True):
        """Train on ``train`` as ``shortlist train`` does, with metrics on
        ``valid`` (another part of the same dataset) in :attr:`report_`.

        Releases the GIL while training; Ctrl-C raises ``KeyboardInterrupt``
        at once and stops the training at its next batch (EASE's solve and
        iALS run to their end in a background thread).
        ``progress``: a tqdm bar per training phase (epochs' batches), when tqdm
        is installed; none otherwise. Returns ``self``.
        """
        if not isinstance(train, Dataset):
            raise TypeError("train: expected a shortlist.Dataset")
        if valid is not None and not isinstance(valid, Dataset):
            raise TypeError("valid: expected a shortlist.Dataset or None")
        bar = _TqdmProgress() if progress else None
        try:
            self._model = _shortlist.Model.fit(
                self._kind,
                train._raw,
                None if valid is None else valid._raw,
                progress=None if bar is None or not bar.available else bar,
                **self._config_args(),
            )
        finally:
            if bar is not None:
                bar.close()
        self.report_ = json.loads(self._model.report_json)
        if valid is None and self._kind == "ranking":
            # Nothing was measured: the CLI's report holds zeros there.
            for key in ("rmse", "mae"):
                self.report_[key] = None
        return self

    def _fitted(self) -> "_shortlist.Model":
        if self._model is None:
            raise ValueError(
                f"this {type(self).__name__} is not fitted: call fit(train) or shortlist.load(dir) first"
            )
        return self._model

    def evaluate(self, test: Dataset) -> Dict[str, Any]:
        """Metrics on ``test`` as ``shortlist eval --model DIR --test F --json``
        prints them: RMSE/MAE (ranking), AUC/log-loss (click models), or
        recall/NDCG/hit rate/top-K accuracy beside popularity (candidate models)."""
        return json.loads(self._fitted().evaluate_json(test._raw))

    def predict(self, user_ids: Iterable[Any], item_ids: Iterable[Any]) -> np.ndarray:
        """Scores of (user, item) pairs as float32: predicted ratings (ranking
        model), or the candidate score (NaN for an unknown item). The ids: lists,
        Series or arrays (numpy integer arrays are read directly), one of each per
        pair."""
        return self._fitted().predict(_ids(user_ids), _ids(item_ids))

    def save(self, path: PathLike) -> None:
        """Write the model directory as one unit: the files ``shortlist train
        --out`` writes, servable as ``BASE/NAME/VERSION`` by ``shortlist serve``."""
        self._fitted().save(os.fspath(path))

    @property
    def path(self) -> str:
        """Where the model's files are (a temporary directory until :meth:`save`)."""
        return str(self._fitted().path)

    def __repr__(self) -> str:
        args = [] if self.config is None else [f"config={self.config!r}"]
        args += [f"{k}={v!r}" for k, v in self.overrides.items()]
        state = "" if self._model is None else " (fitted)"
        return f"{type(self).__name__}({', '.join(args)}){state}"


class _Candidates(_Estimator):
    def recommend(
        self,
        user_ids: Iterable[Any],
        k: int = 10,
        exclude_seen: bool = True,
        as_frame: bool = True,
    ) -> Any:
        """Each user's top ``k`` items, best first, as ``shortlist recommend
        --model`` lists them: a DataFrame ``user_id, item_id, score, title, rank``
        (``user_id``, ``item_id`` and ``title`` are categorical columns: their
        values repeat, and building them from codes is five times faster than
        building string columns; with ``as_frame=False``, or without pandas, a dict
        of those columns as numpy arrays, the ids and titles as object arrays).
        Unknown users get the most popular items. ``user_ids``: a list, Series or
        array of ids (numpy integer arrays are read directly)."""
        model = self._fitted()
        uniques, codes, rows, scores, ranks = model.recommend(_ids(user_ids), k, exclude_seen)
        table = self._item_table(model)
        pd = _pandas()
        if as_frame and pd is not None:
            users = pd.Categorical.from_codes(
                codes.astype(np.int32), dtype=pd.CategoricalDtype(pd.Index(uniques, dtype=object))
            )
            id_dtype, title_dtype = table.dtypes(pd)
            cols = {
                "user_id": users,
                "item_id": pd.Categorical.from_codes(table.id_code[rows], dtype=id_dtype),
                "score": scores,
                "title": pd.Categorical.from_codes(table.title_code[rows], dtype=title_dtype),
                "rank": ranks,
            }
            return pd.DataFrame(cols, copy=False)
        return {
            "user_id": np.asarray(uniques, dtype=object)[codes],
            "item_id": table.ids[rows],
            "score": scores,
            "title": table.titles[rows],
            "rank": ranks,
        }

    def _item_table(self, model: "_shortlist.Model") -> "_ItemTable":
        # Item ids and titles by row, once per fitted model.
        cached = getattr(self, "_table", None)
        if cached is None or cached.model is not model:
            cached = _ItemTable(model)
            self._table = cached
        return cached


class _ItemTable:
    """A fitted model's item ids and titles by row, as object arrays, and as the
    categories of the recommendation frames: the distinct values (titles repeat,
    and every out-of-vocabulary row has the id ``""``), with ``id_code`` and
    ``title_code`` mapping a row to its value's category."""

    def __init__(self, model: "_shortlist.Model"):
        ids, titles = model.item_table()
        self.model = model
        self.ids = np.asarray(ids, dtype=object)
        self.titles = np.asarray(titles, dtype=object)
        self._ids, self.id_code = _distinct(ids)
        self._titles, self.title_code = _distinct(titles)
        self._dtypes = None

    def dtypes(self, pd):
        """The categorical dtypes of the id and title columns (built once)."""
        if self._dtypes is None:
            self._dtypes = (
                pd.CategoricalDtype(pd.Index(self._ids, dtype=object)),
                pd.CategoricalDtype(pd.Index(self._titles, dtype=object)),
            )
        return self._dtypes


def _distinct(values: List[str]):
    # The distinct values (as an object array) and each value's index among them.
    distinct, code = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    return distinct.astype(object), code.astype(np.int32)


class Retrieval(_Candidates):
    """The two-tower retrieval model (user tower · item tower, in-batch softmax).

    ``Retrieval(config=None, **overrides)``: ``config`` is a dict, the path of a
    TOML file (``configs/retrieval-tfrs.toml``) or ``None`` for the shipped
    default; ``epochs``, ``batch_size`` and ``seed`` act as the CLI's flags,
    other keyword arguments replace keys of the configuration
    (``Retrieval(learning_rate=0.05)``).

    >>> model = shortlist.Retrieval(epochs=3).fit(train, test)
    >>> model.evaluate(test)["recall@10"]
    >>> model.recommend(["42"], k=10)
    """

    _kind = "retrieval"

    def embeddings(self):
        """``(user_ids, user_vectors, item_ids, item_vectors)``: the towers'
        outputs as float32 arrays (one row per id), whose dot product is the
        retrieval score."""
        return self._fitted().embeddings()

    @property
    def user_embeddings(self) -> np.ndarray:
        """User vectors (rows in :attr:`user_ids` order)."""
        return self.embeddings()[1]

    @property
    def item_embeddings(self) -> np.ndarray:
        """Item vectors (rows in :attr:`item_ids` order)."""
        return self.embeddings()[3]

    @property
    def user_ids(self) -> list:
        """Raw user ids by row of :attr:`user_embeddings` (``""``: out-of-vocabulary rows)."""
        return self.embeddings()[0]

    @property
    def item_ids(self) -> list:
        """Raw item ids by row of :attr:`item_embeddings`."""
        return self.embeddings()[2]


class Ranking(_Estimator):
    """The ranking model: embeddings + MLP predicting ratings (or click
    probabilities), with the relevance head that orders served lists.

    Same arguments as :class:`Retrieval` (default: ``configs/ranking-default.toml``;
    ``epochs`` also scales the AutoRec's epochs, as ``--epochs`` does).

    >>> ranking = shortlist.Ranking(epochs=2).fit(train, test)
    >>> ranking.evaluate(test)["rmse"]
    >>> ranking.predict(["42", "42"], ["50", "181"])
    """

    _kind = "ranking"


class EASE(_Candidates):
    """EASE, the closed-form item–item candidate model (``configs/ease-default.toml``)."""

    _kind = "ease"


class IALS(_Candidates):
    """Implicit ALS with conjugate gradient (``configs/ials-default.toml``;
    ``epochs`` = iterations)."""

    _kind = "ials"


_CLASSES = {"retrieval": Retrieval, "ranking": Ranking, "ease": EASE, "ials": IALS}


def load(path: PathLike):
    """Load a model directory written by ``shortlist train``, ``quickstart`` or
    ``save`` (``BASE/NAME/VERSION``): returns a :class:`Retrieval`,
    :class:`Ranking`, :class:`EASE` or :class:`IALS`."""
    raw = _shortlist.Model.load(os.fspath(path))
    est = _CLASSES[raw.kind]()
    est._model = raw
    return est


class Pipeline:
    """Retrieve → rank → order: the lists ``POST /v1/recommend`` answers.

    ``Pipeline(retrieval, ranking=None)`` takes fitted (or loaded) models;
    :meth:`load` reads a served base directory.
    """

    def __init__(self, retrieval: _Candidates, ranking: Optional[Ranking] = None):
        self.retrieval = retrieval
        self.ranking = ranking
        self._raw = _shortlist.Pipeline(
            retrieval._fitted(), None if ranking is None else ranking._fitted()
        )

    @classmethod
    def load(cls, base: PathLike) -> "Pipeline":
        """The latest versions under ``base`` (``retrieval/N``, ``ranking/N``)."""
        base = os.fspath(base)
        p = cls.__new__(cls)
        p._raw = _shortlist.Pipeline.load(base)
        p.retrieval = p.ranking = None
        return p

    def recommend(
        self,
        user_ids: Iterable[Any],
        k: int = 10,
        num_candidates: int = 100,
        exclude_seen: bool = True,
        history: Optional[Dict[Any, Iterable[Any]]] = None,
        exclude_items: Optional[Iterable[Any]] = None,
        filter: Optional[Dict[str, Any]] = None,
        max_per: Optional[Dict[str, int]] = None,
        freshness: Optional[Dict[str, Any]] = None,
    ) -> Any:
        """Each user's list: ``user_id, item_id, retrieval_score, ranking_score,
        predicted_rating, order_by, title, rank`` (NaN where a stage gave no
        score; ``""``: no title).

        The request fields of ``POST /v1/recommend``, with its meaning and error
        messages: ``history`` maps a user id to the items they interacted with
        beyond training (a new user gets a list built from them instead of the most
        popular items); ``exclude_items`` are never returned; ``filter`` (e.g.
        ``{"category": ["shoes"], "price": {"lt": 50}}``), ``max_per`` (e.g.
        ``{"category": 2}``) and ``freshness`` (``{"attribute": "launched",
        "half_life_days": 30, "weight": 0.5}``) are the business rules over the
        items' attributes. A bad rule raises ``ValueError`` naming the field."""
        users = [str(u) for u in _ids(user_ids)]
        histories = None
        if history is not None:
            if not isinstance(history, dict):
                raise ValueError(f"history: expected a dict of user id → item ids, got {type(history).__name__}")
            given = {str(u): [str(i) for i in _ids(items)] for u, items in history.items()}
            histories = [given.get(u, []) for u in users]
        exclude = None if exclude_items is None else [str(i) for i in _ids(exclude_items)]
        rules = [None if r is None else json.dumps(r) for r in (filter, max_per, freshness)]
        u, i, rs, ks, pr, order, titles = self._raw.recommend(
            users, k, num_candidates, exclude_seen, histories, exclude, *rules
        )
        return _frame(
            u,
            i,
            {
                "retrieval_score": rs,
                "ranking_score": ks,
                "predicted_rating": pr,
                "order_by": np.asarray(order, dtype=object),
                "title": np.asarray(titles, dtype=object),
            },
        )

    def save(self, base: PathLike) -> Dict[str, str]:
        """Write both models as the next version under ``base``
        (``base/retrieval/N``, ``base/ranking/N``), ready for
        ``shortlist serve --model-base-path base``. Returns the paths."""
        if self.retrieval is None:
            raise ValueError("a loaded Pipeline is already saved under its base directory")
        base = os.fspath(base)
        version = 1 + max(
            [int(v) for name in ("retrieval", "ranking") if os.path.isdir(os.path.join(base, name))
             for v in os.listdir(os.path.join(base, name)) if v.isdigit()] or [0]
        )
        out = {"retrieval": os.path.join(base, "retrieval", str(version))}
        self.retrieval.save(out["retrieval"])
        if self.ranking is not None:
            out["ranking"] = os.path.join(base, "ranking", str(version))
            self.ranking.save(out["ranking"])
        return out


def _frame(users: list, items: list, extra: Dict[str, Any]) -> Any:
    users_a = np.asarray(users, dtype=object)
    n = len(users_a)
    # Each user's rows are consecutive: rank = position minus the start of its run.
    starts = np.flatnonzero(np.r_[True, users_a[1:] != users_a[:-1]]) if n else np.zeros(0, np.int64)
    rank = np.arange(n, dtype=np.int64) - np.repeat(starts, np.diff(np.r_[starts, n]))
    cols = {"user_id": users_a, "item_id": np.asarray(items, dtype=object), **extra, "rank": rank + 1}
    pd = _pandas()
    return pd.DataFrame(cols) if pd is not None else cols
