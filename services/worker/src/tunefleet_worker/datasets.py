"""Loading a study's dataset once per worker process, within the configured data roots."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from tunefleet_contract.spec import (
    BUILTIN_DATASETS,
    DatasetSpec,
    FileDataset,
    SyntheticDataset,
    Task,
    UploadDataset,
)
from tunefleet_runtime.tables import TableError, features, fill_missing_category, read_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Dataset", "DatasetError", "Fetch", "from_frame", "load_dataset"]

# Where an uploaded dataset's file is on this machine (the worker's DataCache.path).
Fetch = Callable[[UploadDataset], Path]


class DatasetError(TableError):
    """The dataset cannot be read or used; every trial of the message fails with this text."""


@dataclass(frozen=True)
class Dataset:
    """Features and target as every trial sees them.

    `X` is a float64 array when every feature is numeric (NaN is a missing value for all three
    libraries). A table with string or categorical columns stays a DataFrame: numeric columns
    float64, the others pandas `category` with their levels fixed on the whole table, so that
    every fold (and a refit) codes them alike; `categorical` names those columns.
    """

    X: Any
    y: npt.NDArray[np.generic]
    task: Task
    categorical: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = ()  # of a table (built-in and synthetic data have none)
    classes: tuple[Any, ...] = ()  # the original labels; `y` holds their indices
    _views: dict[str, Dataset] = field(default_factory=dict, compare=False, repr=False)

    def with_missing_category(self) -> Dataset:
        """The table with missing categories as a level of their own (`MISSING_CATEGORY`), for
        a library that refuses NaN there; built once, shared by every trial of the process."""
        view = self._views.get("missing")
        if view is None:
            X = self.X.copy()
            for name in self.categorical:
                X[name] = fill_missing_category(X[name])
            view = dataclasses.replace(self, X=X, _views={})
            self._views["missing"] = view
        return view


def _classes(y: npt.NDArray[np.generic]) -> npt.NDArray[np.int64]:
    # XGBoost wants labels 0..k-1; encoding every target the same way keeps all libraries
    # (and the GridSearchCV parity check) on identical data.
    _, encoded = np.unique(y, return_inverse=True)
    return np.asarray(encoded, dtype=np.int64)


def _infer_task(y: npt.NDArray[np.generic]) -> Task:
    if y.dtype.kind in "OUSb":
        return "classification"
    if y.dtype.kind in "iu" and len(np.unique(y)) <= 50:
        return "classification"
    return "regression"


def _inside(path: Path, roots: Sequence[Path]) -> Path:
    if not roots:
        raise DatasetError("file datasets are disabled: this worker has no TUNEFLEET_DATA_ROOTS")
    for root in roots:
        try:
            candidate = (root / path).resolve()
            if candidate.is_relative_to(root.resolve()) and candidate.exists():
                return candidate
        except OSError as exc:  # a name too long, a loop of links: the path's fault, say so
            raise DatasetError(f"{path}: {exc.strerror or exc}") from None
    # The roots are the worker's own layout: the reason goes to users, so it names the setting.
    raise DatasetError(
        f"{path}: not found under this worker's data roots (TUNEFLEET_DATA_ROOTS); "
        "paths may not leave them"
    )


def _without_roots(text: str, roots: Sequence[Path]) -> str:
    """A reason with the worker's data roots taken out of it (a library's error names the file
    it read by its full path): what a user sees is the path their spec gave."""
    names = {str(root) for root in roots} | {str(root.resolve()) for root in roots}
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name.rstrip("/") + "/", "").replace(name, "<data root>")
    return text


def _read_table(path: Path, parquet: bool, target: str, name: str) -> Dataset:
    try:
        frame = read_table(path, "parquet" if parquet else "csv", name)
    except TableError as exc:
        raise DatasetError(str(exc)) from None
    return from_frame(frame, target, name)


def from_frame(frame: pd.DataFrame, target: str, name: str = "DataFrame") -> Dataset:
    """The dataset a table makes: its features and target as every trial sees them. The rules
    are `tunefleet_runtime.tables.features`, the ones the client checks a table by before it
    uploads it."""
    try:
        table = features(frame, target, name)
    except TableError as exc:
        raise DatasetError(str(exc)) from None
    return _finish(table.X, table.y, _infer_task(table.y), table.categorical, table.names)


def _finish(
    X: Any,
    y: npt.NDArray[np.generic],
    task: Task,
    categorical: tuple[str, ...] = (),
    features: tuple[str, ...] = (),
) -> Dataset:
    classes: tuple[Any, ...] = ()
    if task == "classification":
        classes = tuple(np.unique(y).tolist())
        y = _classes(y)
    else:
        y = np.asarray(y, dtype=np.float64)
    # Shared by every trial of this process: nothing may change it in place.
    y.flags.writeable = False
    if not categorical:
        X = np.ascontiguousarray(X, dtype=np.float64)
        X.flags.writeable = False
    return Dataset(
        X=X, y=y, task=task, categorical=categorical, feature_names=features, classes=classes
    )


def _read_upload(spec: UploadDataset, fetch: Fetch | None) -> Dataset:
    if fetch is None:
        raise DatasetError("uploaded datasets need the store: this worker has no MONGODB_URL")
    try:
        path = fetch(spec)
    except ValueError as exc:  # BlobError: missing, over the limit, corrupt
        raise DatasetError(str(exc)) from None
    return _read_table(path, spec.format == "parquet", spec.target, f"dataset {spec.sha256}")


@lru_cache(maxsize=8)
def _load(spec_json: str, roots: tuple[Path, ...], fetch: Fetch | None) -> Dataset:
    from pydantic import TypeAdapter

    spec: DatasetSpec = TypeAdapter(DatasetSpec).validate_json(spec_json)
    if isinstance(spec, FileDataset):
        try:
            path = _inside(Path(spec.path), roots)
            return _read_table(path, path.suffix in {".parquet", ".pq"}, spec.target, spec.path)
        except DatasetError as exc:
            raise DatasetError(_without_roots(str(exc), roots)) from None
    if isinstance(spec, UploadDataset):
        return _read_upload(spec, fetch)
    if isinstance(spec, SyntheticDataset):
        from sklearn import datasets

        kwargs = spec.model_dump(exclude={"kind", "seed"}, exclude_none=True)
        try:
            X, y = getattr(datasets, spec.kind)(random_state=spec.seed, **kwargs)
        except ValueError as exc:
            raise DatasetError(f"{spec.kind}: {exc}") from None
        task: Task = "classification" if spec.kind == "make_classification" else "regression"
    else:
        from sklearn import datasets

        X, y = getattr(datasets, f"load_{spec.name}")(return_X_y=True)
        task = BUILTIN_DATASETS[spec.name]
    return _finish(X, y, task)


def load_dataset(
    spec: DatasetSpec, roots: Sequence[Path] = (), fetch: Fetch | None = None
) -> Dataset:
    """The dataset, from this process's cache after the first load."""
    # Every message asks: no TypeAdapter here, building one costs more than a no-op trial.
    return _load(spec.model_dump_json(), tuple(roots), fetch)
