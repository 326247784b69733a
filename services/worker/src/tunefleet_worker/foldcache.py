"""Per-fold arrays and training structures, built once per worker and shared by trials.

scikit-learn's GridSearchCV slices every fold again for every fit, and the estimators then bin
the features again (XGBoost's QuantileDMatrix, LightGBM's Dataset, CatBoost's quantized Pool):
for a small model that preparation costs as much as the boosting. A worker keeps the slices of
the folds it has seen, and each library's prepared training set under a key made of the fold and
every parameter that could change it, so that only trials that would build the very same
structure share it. Scores stay identical to GridSearchCV's (tests/unit/test_parity.py).

Trials run one at a time on the worker's training thread; a job abandoned on SIGTERM or a lost
connection may still finish its current trial on its own thread, hence the locks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from tunefleet_worker.datasets import Dataset

__all__ = ["Fold", "FoldSet", "clear", "fold_set"]

T = TypeVar("T")

# Fold slices take about `folds` times the dataset's size; above this the worker slices per
# fit as scikit-learn does, trading speed for memory.
FOLD_ARRAY_BUDGET_BYTES = 1 << 30
# Binned training sets are about one byte per cell; this bounds how many of them are kept.
STRUCTURE_BUDGET_BYTES = 512 << 20
MAX_STRUCTURES = 256
# Folds of this many (dataset, folds, seed) combinations are kept: a worker usually serves one
# study at a time, and a study has one dataset and one splitter (CatBoost's view of a table
# with missing categories is one more).
MAX_FOLD_SETS = 3


@dataclass(frozen=True)
class Fold:
    index: int
    train: npt.NDArray[np.intp]
    test: npt.NDArray[np.intp]
    X_train: Any  # a float64 array, or a DataFrame with categorical columns (`Dataset`)
    y_train: npt.NDArray[np.generic]
    X_test: Any
    y_test: npt.NDArray[np.generic]


def _read_only(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # Shared across trials: a library writing into its input must fail, not poison the cache.
    array.setflags(write=False)
    return array


def _rows(X: Any, rows: npt.NDArray[np.intp]) -> Any:
    # A table (categorical columns) is sliced as GridSearchCV slices it (`_safe_indexing`:
    # DataFrame.take); pandas hands out copies, so no flag is needed to protect the cache.
    if isinstance(X, np.ndarray):
        return _read_only(X[rows])
    return X.take(rows, axis=0)


def _nbytes(X: Any) -> int:
    return int(X.nbytes) if isinstance(X, np.ndarray) else int(X.memory_usage(index=False).sum())


@dataclass
class FoldSet:
    """The folds of one dataset under one splitter, and the structures built on them."""

    dataset: Dataset
    splits: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]
    keep_arrays: bool
    max_structures: int
    hits: int = 0
    misses: int = 0
    _folds: dict[int, Fold] = field(default_factory=dict)
    _structures: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fold(self, index: int) -> Fold:
        cached = self._folds.get(index)
        if cached is not None:
            return cached
        train, test = self.splits[index]
        X, y = self.dataset.X, self.dataset.y
        fold = Fold(
            index=index,
            train=train,
            test=test,
            X_train=_rows(X, train),
            y_train=_read_only(y[train]),
            X_test=_rows(X, test),
            y_test=_read_only(y[test]),
        )
        if self.keep_arrays:
            self._folds[index] = fold
        return fold

    def __iter__(self) -> Any:
        return (self.fold(i) for i in range(len(self.splits)))

    def structure(self, key: Hashable, build: Callable[[], T]) -> T:
        """The structure under `key`, built by `build` on the first request (LRU)."""
        with self._lock:
            if key in self._structures:
                self.hits += 1
                self._structures.move_to_end(key)
                return self._structures[key]  # type: ignore[no-any-return]
            self.misses += 1
        value = build()  # outside the lock: building takes a while and may raise
        with self._lock:
            self._structures[key] = value
            while len(self._structures) > self.max_structures:
                self._structures.popitem(last=False)
        return value


_SETS: OrderedDict[tuple[int, int, int], FoldSet] = OrderedDict()
_SETS_LOCK = threading.Lock()


def _splits(
    dataset: Dataset, folds: int, seed: int
) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (StratifiedKFold if dataset.task == "classification" else KFold)(
        n_splits=folds, shuffle=True, random_state=seed
    )
    return list(splitter.split(dataset.X, dataset.y))


def fold_set(dataset: Dataset, folds: int, seed: int) -> FoldSet:
    """The folds of `dataset` for a study's splitter, from this process's cache when it can."""
    key = (id(dataset), folds, seed)
    with _SETS_LOCK:
        cached = _SETS.get(key)
        # The id of a dataset that was freed can come back for another one: check identity.
        if cached is not None and cached.dataset is dataset:
            _SETS.move_to_end(key)
            return cached
    n_rows, n_features = dataset.X.shape if dataset.X.ndim == 2 else (len(dataset.X), 1)
    binned_bytes = max(1, n_rows * n_features)
    fresh = FoldSet(
        dataset=dataset,
        splits=_splits(dataset, folds, seed),
        keep_arrays=folds * _nbytes(dataset.X) <= FOLD_ARRAY_BUDGET_BYTES,
        max_structures=min(MAX_STRUCTURES, max(folds, STRUCTURE_BUDGET_BYTES // binned_bytes)),
    )
    with _SETS_LOCK:
        _SETS[key] = fresh
        while len(_SETS) > MAX_FOLD_SETS:
            _SETS.popitem(last=False)
    return fresh


def clear() -> None:
    """Forget every fold and structure (tests; a worker never needs to)."""
    with _SETS_LOCK:
        _SETS.clear()
