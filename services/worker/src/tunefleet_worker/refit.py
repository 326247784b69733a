"""Refit: one trial's configuration trained on the whole dataset, saved in the library's own
format (never pickle) and stored as a blob, described by a `model.stored` event.

The estimator is the one the trial cross-validated (`make_estimator`, the same native handling
of categorical columns), so a local fit of the same parameters on the same data is the same
model: tests/e2e/test_upload.py compares their predictions.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from tunefleet_contract.messages import FeatureLevels, ModelRefit, ModelStored
from tunefleet_runtime.blobs import BlobStore
from tunefleet_runtime.tables import MISSING_CATEGORY

from tunefleet_worker.datasets import Dataset
from tunefleet_worker.libraries import model_library
from tunefleet_worker.training import library_data, library_version, make_estimator

__all__ = ["refit", "save_native"]


def save_native(library: str, estimator: Any) -> tuple[bytes, str]:
    """The fitted model's bytes in the library's native format, and that format."""
    model = model_library(library)
    if model.model_format is None:
        raise ValueError(f"{library}: trains no model to store")
    with tempfile.TemporaryDirectory(prefix="tunefleet-model-") as tmp:
        path = Path(tmp) / f"model.{model.model_format}"
        model.save_model(estimator, path)
        return path.read_bytes(), model.model_format


def refit(
    message: ModelRefit,
    dataset: Dataset,
    blobs: BlobStore,
    *,
    threads: int,
    worker: str,
    attempts: int,
) -> ModelStored:
    """Train and store; a library error is a `failed` model, a store error raises (redelivery)."""
    base: dict[str, Any] = {
        "study_id": message.study_id,
        "trial_id": message.trial_id,
        "library": message.library,
        "params": message.params,
        "dataset": message.dataset,
        "task": dataset.task,
        "library_version": library_version(message.library),
        "feature_names": list(dataset.feature_names),
        "feature_types": [str(t) for t in _dtypes(dataset)],
        "categories": [
            FeatureLevels(feature=name, levels=[str(v) for v in dataset.X[name].cat.categories])
            for name in dataset.categorical
        ],
        "classes": list(dataset.classes),
        "n_rows": len(dataset.y),
        "worker": worker,
        "attempts": attempts,
    }
    data = library_data(dataset, message.library)
    if data is not dataset:
        base["missing_category"] = MISSING_CATEGORY
    params = dict(message.params)
    started = time.perf_counter()
    try:
        estimator = make_estimator(message.library, data.task, params, threads, data.categorical)
        estimator.fit(data.X, data.y)
        content, fmt = save_native(message.library, estimator)
    except Exception as exc:  # a library error is the refit's result, as with trials
        return ModelStored(
            **base,
            status="failed",
            error=f"{type(exc).__name__}: {exc}"[:10_000],
            fit_time_s=time.perf_counter() - started,
            finished_at=time.time(),
        )
    fit_time = time.perf_counter() - started
    info, _ = blobs.put_bytes(
        content, kind="model", format=fmt, name=f"{message.study_id}-{message.trial_id}.{fmt}"
    )
    return ModelStored(
        **base,
        status="done",
        sha256=info.sha256,
        format=fmt,
        size=info.size,
        fit_time_s=fit_time,
        finished_at=time.time(),
    )


def _dtypes(dataset: Dataset) -> list[object]:
    if dataset.categorical:
        return list(dataset.X.dtypes.map(lambda t: "category" if t.name == "category" else t))
    return [dataset.X.dtype] * len(dataset.feature_names)
