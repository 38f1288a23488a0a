"""Type stubs of the Rust extension ``shortlist._shortlist`` (the public API is
re-exported, with pandas conversions, by ``shortlist``)."""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, PathLike[str]]
# A list of ids (str, or values whose str() is the id) or a numpy int64 array.
_Ids = Union[List[Any], npt.NDArray[np.int64]]
_FeatureColumns = Tuple[List[str], List[Tuple[str, str, Any]]]

class Dataset:
    @staticmethod
    def open(spec: str, *, skip_bad_rows: bool = ..., duplicates: str = ..., progress: bool = ...) -> Dataset: ...
    @staticmethod
    def load_split(train: _Path, test: _Path, data: Optional[str] = ..., *, progress: bool = ...) -> Tuple[Dataset, Dataset]: ...
    @staticmethod
    def from_columns(
        users: Sequence[str],
        items: Sequence[str],
        ratings: Optional[npt.NDArray[np.float32]] = ...,
        timestamps: Optional[npt.NDArray[np.int64]] = ...,
        *,
        name: str = ...,
        user_features: Optional[_FeatureColumns] = ...,
        item_features: Optional[_FeatureColumns] = ...,
        item_title: Optional[str] = ...,
    ) -> Dataset: ...
    def split(self, method: str = ..., ratio: float = ..., seed: int = ..., n: int = ...) -> Tuple[Dataset, Dataset]: ...
    def columns(self) -> Tuple[List[str], List[str], npt.NDArray[np.float32], Optional[npt.NDArray[np.int64]]]: ...
    def features(self, of: str) -> Tuple[List[str], Dict[str, list]]: ...
    def to_tsv(self, path: _Path) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def num_users(self) -> int: ...
    @property
    def num_items(self) -> int: ...
    @property
    def explicit(self) -> bool: ...
    def __len__(self) -> int: ...

class Model:
    @staticmethod
    def fit(
        kind: str,
        train: Dataset,
        valid: Optional[Dataset] = ...,
        *,
        config: Optional[_Path] = ...,
        config_text: Optional[str] = ...,
        epochs: Optional[int] = ...,
        batch_size: Optional[int] = ...,
        seed: Optional[int] = ...,
        progress: Optional[Callable[[int, str, Optional[int], int], None]] = ...,
    ) -> Model: ...
    @staticmethod
    def load(dir: _Path) -> Model: ...
    @property
    def kind(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def report_json(self) -> Optional[str]: ...
    @property
    def config_toml(self) -> str: ...
    def evaluate_json(self, test: Dataset) -> str: ...
    def recommend(
        self, user_ids: _Ids, k: int = ..., exclude_seen: bool = ...
    ) -> Tuple[
        List[str],
        npt.NDArray[np.uint32],
        npt.NDArray[np.uint32],
        npt.NDArray[np.float32],
        npt.NDArray[np.int64],
    ]: ...
    def item_table(self) -> Tuple[List[str], List[str]]: ...
    def predict(self, user_ids: _Ids, item_ids: _Ids) -> npt.NDArray[np.float32]: ...
    def embeddings(
        self,
    ) -> Tuple[List[str], npt.NDArray[np.float32], List[str], npt.NDArray[np.float32]]: ...
    def save(self, dir: _Path) -> None: ...

class Pipeline:
    def __init__(self, retrieval: Model, ranking: Optional[Model] = ...) -> None: ...
    @staticmethod
    def load(base: _Path) -> Pipeline: ...
    def recommend(
        self,
        user_ids: Sequence[str],
        k: int = ...,
        num_candidates: int = ...,
        exclude_seen: bool = ...,
        histories: Optional[Sequence[Sequence[str]]] = ...,
        exclude_items: Optional[Sequence[str]] = ...,
        filter: Optional[str] = ...,
        max_per: Optional[str] = ...,
        freshness: Optional[str] = ...,
    ) -> Tuple[
        List[str],
        List[str],
        npt.NDArray[np.float32],
        npt.NDArray[np.float32],
        npt.NDArray[np.float32],
        List[str],
        List[str],
    ]: ...

def default_config(kind: str) -> str: ...
def config_to_toml(json: str) -> str: ...
def toml_to_json(text: str, label: str) -> str: ...
