"""Data in: a DataFrame built here is tuned by workers that cannot read this test's files."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tunefleet.client import Client
from tunefleet.report import build_report
from tunefleet_contract.spec import UploadDataset
from tunefleet_dev.devservices import Pipeline
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_worker.datasets import from_frame
from tunefleet_worker.training import library_data, make_estimator

from tests.support.reference import gridsearch_means
from tests.support.tables import mixed_table

SEARCH: dict[str, dict[str, Any]] = {
    "xgboost": {"fixed": {"n_estimators": 8, "tree_method": "hist"}, "grid": {"max_depth": [2, 4]}},
    "lightgbm": {
        "fixed": {"n_estimators": 8, "min_child_samples": 5},
        "grid": {"num_leaves": [4, 8]},
    },
    "catboost": {"fixed": {"iterations": 8}, "grid": {"depth": [2, 4]}},
}


@pytest.mark.timeout(600)
def test_dataframe_in_tuned_by_workers_without_the_files(
    settings: ClientSettings, pipeline: Pipeline, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "worker-data"  # the workers' only data root: empty
    elsewhere.mkdir()
    pipeline.start_all(
        workers=2,
        TUNEFLEET_DATA_ROOTS=str(elsewhere),
        TUNEFLEET_CACHE_DIR=str(tmp_path / "worker-cache"),
    )
    client = Client(settings)
    frame = mixed_table()  # string and categorical columns, NaNs
    spec = {
        "name": "upload",
        "dataset": {"kind": "upload", "target": "target"},
        "metric": "roc_auc",
        "cv": {"folds": 3, "seed": 5},
        "search": SEARCH,
    }
    study = client.submit(spec, data=frame)
    dataset = study.spec.dataset
    assert isinstance(dataset, UploadDataset) and dataset.sha256 and dataset.format == "parquet"
    assert client.submit(spec, data=frame) == study  # same data: same study, nothing uploaded
    assert len(client.blobs.list("dataset")) == 1

    status = client.wait(study, timeout_s=540)
    assert (status.done, status.failed) == (6, 0)
    assert list(elsewhere.iterdir()) == []
    assert [p.name for p in (tmp_path / "worker-cache").iterdir()] == [f"{dataset.sha256}.parquet"]

    data = from_frame(frame, "target")
    docs = list(connect_store(settings).trials.find({"study_id": study}))
    for library, part in SEARCH.items():
        reference = gridsearch_means(
            library, data, part["fixed"], part["grid"], metric="roc_auc", folds=3, seed=5
        )
        for doc in (d for d in docs if d["library"] == library):
            key = tuple(sorted(doc["params"].items()))
            assert abs(doc["score"] - reference[key]) <= 1e-9, (library, key)

    # Model out: the best trial refitted on the whole table by a worker, stored natively, and
    # back here as a fitted estimator that predicts exactly as a local fit does.
    best = client.best(study, n=1)[0]
    estimator = study.best_model(timeout_s=300)
    model = study.model()
    assert model is not None and model.trial_id == best.trial_id and model.status == "done"
    assert model.feature_names == ["age", "income", "plan", "region"]
    assert [c.feature for c in model.categories] == ["plan", "region"]
    assert model.classes == [0, 1] and model.n_rows == len(frame)
    view = library_data(data, best.library)
    local = make_estimator(best.library, data.task, dict(best.params), 1, view.categorical)
    local.fit(view.X, view.y)
    unseen = mixed_table(rows=100, seed=99)
    features = study.prepare(unseen)
    assert np.array_equal(estimator.predict_proba(features), local.predict_proba(features))

    db = connect_store(settings)
    first = db.models.find_one({"_id": best.trial_id})["stored_at"]
    assert study.refit() == best.trial_id  # again: the same model id, one document
    deadline = time.monotonic() + 120
    while db.models.find_one({"_id": best.trial_id})["stored_at"] == first:
        assert time.monotonic() < deadline, "the second refit never ended"
        time.sleep(0.5)
    assert db.models.count_documents({"study_id": str(study)}) == 1
    assert len(client.blobs.list("model")) == 1  # the same bytes: one blob

    # The report links the model: a download that works offline, the bytes of the stored blob.
    page = build_report(client, study)
    name = f"{study}-{model.trial_id}.{model.format}"
    match = re.search(f"<a download='{re.escape(name)}' href='data:[^,]+,([^']+)'", page)
    assert match is not None
    assert base64.b64decode(match.group(1)) == client.model_bytes(model)
