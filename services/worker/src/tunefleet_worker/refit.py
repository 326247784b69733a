"""Refit: one trial's configuration trained on the whole dataset, saved in the library's own
format (never pickle) and stored as a blob, described by a `model.stored` event.

The estimator is the one the trial cross-validated (`make_estimator`, the same native handling
of categorical columns), so a local fit of the same parameters on the same data is the same
model: tests/e2e/test_upload.py compares their predictions.

A model blob is stored under its identity (`model_identity`: the trial, the library and its
version, the data) as well as its content hash, and a refit of a model already stored keeps the
stored blob: CatBoost writes a random `model_guid`, the training time and the thread count into
every `.cbm`, so its bytes alone would make each refit of one trial a new blob.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tunefleet_contract.libraries import catalogues
from tunefleet_contract.messages import FeatureLevels, ModelRefit, ModelStored
from tunefleet_runtime.blobs import BlobStore
from tunefleet_runtime.tables import MISSING_CATEGORY

from tunefleet_worker.datasets import Dataset
from tunefleet_worker.libraries import model_library
from tunefleet_worker.training import library_data, library_version, make_estimator

__all__ = ["model_identity", "refit", "save_native"]


def save_native(library: str, estimator: Any) -> tuple[bytes, str]:
    """The fitted model's bytes in the library's native format, and that format."""
    model = model_library(library)
    if model.model_format is None:
        raise ValueError(f"{library}: trains no model to store")
    with tempfile.TemporaryDirectory(prefix="tunefleet-model-") as tmp:
        path = Path(tmp) / f"model.{model.model_format}"
        model.save_model(estimator, path)
        return path.read_bytes(), model.model_format


def model_identity(message: ModelRefit, version: str | None, dataset: Dataset) -> str:
    """What a refitted model is: the trial (its study, library and parameters), the library's
    version, and the content of the table it is trained on (a file dataset may change under the
    same path). Not the worker's thread count, nor when it was trained."""
    digest = hashlib.sha256()
    head: list[object] = [
        message.study_id,
        message.trial_id,
        message.library,
        message.params,
        version or "",
    ]
    if message.best_round is not None:
        head.append(message.best_round)  # appended only when given: older identities hold
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    X = dataset.X
    if isinstance(X, pd.DataFrame):
        digest.update(json.dumps([list(map(str, X.columns)), [str(t) for t in X.dtypes]]).encode())
        for name in dataset.categorical:
            digest.update(json.dumps([str(v) for v in X[name].cat.categories]).encode())
        digest.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
    else:
        array = np.ascontiguousarray(X)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    y = np.ascontiguousarray(dataset.y)
    digest.update(f"{y.dtype.str}{y.shape}".encode())
    digest.update(y.tobytes())
    digest.update(json.dumps([str(c) for c in dataset.classes]).encode())
    return f"model:{message.trial_id}:{digest.hexdigest()}"


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
    if message.best_round is not None:
        # The trial's rounds were chosen by its validation curve: the model is trained for
        # exactly that many, so every prediction of it is the best round's.
        rounds = catalogues()[message.library].rounds
        if not rounds:
            raise ValueError(f"{message.library}: has no rounds to set")
        params[rounds[0]] = message.best_round
        base.update(rounds=message.best_round, rounds_from="early_stopping")
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
    identity = model_identity(message, base["library_version"], dataset)
    info = blobs.find(identity)
    if info is None or info.format != fmt:
        info, _ = blobs.put_bytes(
            content,
            kind="model",
            format=fmt,
            name=f"{message.study_id}-{message.trial_id}.{fmt}",
            identity=identity,
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
