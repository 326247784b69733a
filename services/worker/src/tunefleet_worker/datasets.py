"""Loading a study's dataset once per worker process, within the configured data roots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tunefleet_contract.spec import (
    BUILTIN_DATASETS,
    DatasetSpec,
    FileDataset,
    SyntheticDataset,
    Task,
)

__all__ = ["Dataset", "DatasetError", "load_dataset"]


class DatasetError(ValueError):
    """The dataset cannot be read or used; every trial of the message fails with this text."""


@dataclass(frozen=True)
class Dataset:
    X: npt.NDArray[np.float64]
    y: npt.NDArray[np.generic]
    task: Task


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
    raise DatasetError(
        f"{path}: not found under the data roots ({', '.join(map(str, roots))}); "
        "paths may not leave them"
    )


def _read_file(
    spec: FileDataset, roots: Sequence[Path]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.generic]]:
    import pandas as pd

    path = _inside(Path(spec.path), roots)
    try:
        frame = pd.read_parquet(path) if path.suffix in {".parquet", ".pq"} else pd.read_csv(path)
    except Exception as exc:  # pandas and pyarrow raise many kinds for a corrupt file
        raise DatasetError(f"{spec.path}: cannot read: {type(exc).__name__}: {exc}") from None
    if spec.target not in frame.columns:
        raise DatasetError(f"{spec.path}: no column {spec.target!r}")
    features = frame.drop(columns=[spec.target])
    bad = [str(c) for c in features.columns if features[c].dtype.kind not in "biuf"]
    if bad:
        raise DatasetError(
            f"{spec.path}: feature columns must be numeric; not: {', '.join(bad[:10])}"
        )
    if len(frame) < 2:
        raise DatasetError(f"{spec.path}: fewer than two rows")
    return features.to_numpy(dtype=np.float64), frame[spec.target].to_numpy()


@lru_cache(maxsize=8)
def _load(spec_json: str, roots: tuple[Path, ...]) -> Dataset:
    from pydantic import TypeAdapter

    spec: DatasetSpec = TypeAdapter(DatasetSpec).validate_json(spec_json)
    if isinstance(spec, FileDataset):
        X, y = _read_file(spec, roots)
        task = _infer_task(y)
    elif isinstance(spec, SyntheticDataset):
        from sklearn import datasets

        kwargs = spec.model_dump(exclude={"kind", "seed"}, exclude_none=True)
        try:
            X, y = getattr(datasets, spec.kind)(random_state=spec.seed, **kwargs)
        except ValueError as exc:
            raise DatasetError(f"{spec.kind}: {exc}") from None
        task = "classification" if spec.kind == "make_classification" else "regression"
    else:
        from sklearn import datasets

        X, y = getattr(datasets, f"load_{spec.name}")(return_X_y=True)
        task = BUILTIN_DATASETS[spec.name]
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = _classes(y) if task == "classification" else np.asarray(y, dtype=np.float64)
    # Shared by every trial of this process: nothing may change it in place.
    X.flags.writeable = False
    y.flags.writeable = False
    return Dataset(X=X, y=y, task=task)


def load_dataset(spec: DatasetSpec, roots: Sequence[Path] = ()) -> Dataset:
    """The dataset, from this process's cache after the first load."""
    # Every message asks: no TypeAdapter here, building one costs more than a no-op trial.
    return _load(spec.model_dump_json(), tuple(roots))
