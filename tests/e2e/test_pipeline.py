"""A multi-library study through the three services as separate processes."""

from __future__ import annotations

from typing import Any

import pytest
from tunefleet.client import Client
from tunefleet_dev.devservices import Pipeline
from tunefleet_publisher.planner import expand
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker.datasets import load_dataset

from tests.support.reference import ParamsKey, gridsearch_means

SEARCH: dict[str, dict[str, Any]] = {
    "xgboost": {
        # Families: the two n_estimators values of each point share one fit per fold.
        "fixed": {"subsample": 0.7},
        "grid": {"max_depth": [2, 3, 4], "learning_rate": [0.1, 0.3], "n_estimators": [5, 10]},
    },
    "lightgbm": {
        "fixed": {"n_estimators": 10},
        "grid": {"num_leaves": [4, 8, 16], "learning_rate": [0.1, 0.3], "subsample": [0.7, 1.0]},
    },
    "catboost": {
        "fixed": {"iterations": 10},
        "grid": [{"depth": [2, 3], "learning_rate": [0.1, 0.3]}, {"depth": [4, 5]}],
    },
}
SPEC = {
    "name": "e2e",
    "dataset": "breast_cancer",
    "metric": "roc_auc",
    "cv": {"folds": 3, "seed": 11},
    "chunk_size": 2,
    "search": SEARCH,
}


def sklearn_scores(spec: Any) -> dict[tuple[str, ParamsKey], float]:
    data = load_dataset(spec.dataset)
    return {
        (library, key): score
        for library, part in SEARCH.items()
        for key, score in gridsearch_means(
            library, data, part["fixed"], part["grid"], metric="roc_auc", folds=3, seed=11
        ).items()
    }


@pytest.mark.timeout(600)
def test_study_through_three_processes(settings: ClientSettings, pipeline: Pipeline) -> None:
    pipeline.start_all(workers=2)
    client = Client(settings)
    study_id = client.submit(SPEC)
    assert client.submit(SPEC) == study_id  # the same spec twice: same study, same trials

    status = client.wait(study_id, timeout_s=540)
    spec = parse_spec(SPEC)
    expected_ids = {t.trial_id for t in expand(spec, study_id)}
    assert len(expected_ids) == 30
    assert status.n_trials == len(expected_ids)
    assert (status.done, status.failed) == (len(expected_ids), 0)

    db = connect_store(settings)
    docs = list(db.trials.find({"study_id": study_id}))
    assert sorted(d["_id"] for d in docs) == sorted(expected_ids)  # one each, none missing

    reference = sklearn_scores(spec)
    for doc in docs:
        key = (doc["library"], tuple(sorted(doc["params"].items())))
        assert abs(doc["score"] - reference[key]) <= 1e-9, key
        assert doc["library_version"] and doc["worker"] in {"worker-1", "worker-2"}
        assert len(doc["fold_scores"]) == 3 and doc["fit_time_s"] > 0
        assert doc["fit_shared_by"] == (2 if doc["library"] == "xgboost" else 1)
    assert {d["library"] for d in docs} == set(SEARCH)
    assert {d["worker"] for d in docs} == {"worker-1", "worker-2"}  # both took work

    # Every service is still running, and stops cleanly on SIGTERM.
    for name in list(pipeline.processes):
        assert pipeline.processes[name].poll() is None, name
        assert pipeline.stop(name) == 0, name
