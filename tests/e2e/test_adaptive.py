"""Adaptive searches (TPE, ASHA) through the three services as separate processes, beside a
grid, with chunking, cancel and resume: exact counts, no trial twice, scikit-learn's scores."""

from __future__ import annotations

from typing import Any

import pytest
from tunefleet.client import Client
from tunefleet_dev.devservices import Pipeline
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker.datasets import load_dataset

from tests.support.reference import gridsearch_means, params_key
from tests.support.waiting import wait_until

RUNGS = (2, 6, 18)
SPEC: dict[str, Any] = {
    "name": "adaptive",
    "dataset": "breast_cancer",
    "metric": "roc_auc",
    "cv": {"folds": 3, "seed": 4},
    "chunk_size": 2,
    "search": {
        "xgboost": {
            "fixed": {"n_estimators": 8},
            "grid": {"max_depth": [3]},
            "tpe": {
                "n_trials": 8,
                "max_in_flight": 2,
                "n_startup": 3,
                "space": {
                    "learning_rate": {"loguniform": [0.01, 0.5]},
                    "max_depth": {"int": [2, 6]},
                },
            },
        },
        "lightgbm": {
            "asha": {
                "n_trials": 10,
                "max_in_flight": 2,
                "min_rounds": RUNGS[0],
                "max_rounds": RUNGS[-1],
                "eta": 3,
                "space": {
                    "learning_rate": {"loguniform": [0.01, 0.5]},
                    "num_leaves": {"int": [4, 16]},
                },
            },
        },
    },
}
N_TRIALS = 1 + 8 + 10


@pytest.mark.timeout(600)
def test_tpe_and_asha_beside_a_grid(settings: ClientSettings, pipeline: Pipeline) -> None:
    pipeline.start_all(workers=2)
    client = Client(settings)
    study_id = client.submit(SPEC)
    status = client.wait(study_id, timeout_s=540)
    assert status.n_trials == N_TRIALS
    assert (status.done, status.failed) == (N_TRIALS, 0)

    db = connect_store(settings)
    docs = list(db.trials.find({"study_id": study_id}))
    planned = list(db.planned.find({"study_id": study_id}))
    assert len(docs) == N_TRIALS == len({d["_id"] for d in docs})
    assert {d["_id"] for d in planned} == {d["_id"] for d in docs}  # each decision has its result
    # After the first decisions, every adaptive decision names the result it was made on.
    assert sum(1 for d in planned if d.get("after")) == N_TRIALS - 1 - 2 - 2

    asha = [d for d in docs if d["library"] == "lightgbm"]
    assert {d["params"]["n_estimators"] for d in asha} <= set(RUNGS)
    assert sum(1 for d in asha if d["params"]["n_estimators"] == RUNGS[0]) >= 3
    tpe = [d for d in docs if d["library"] == "xgboost"]
    assert len(tpe) == 9 and all(d["params"]["n_estimators"] == 8 for d in tpe)

    # A trial an adaptive search decided scores exactly what scikit-learn's GridSearchCV does.
    data = load_dataset(parse_spec(SPEC).dataset)
    for doc in (max(asha, key=lambda d: d["params"]["n_estimators"]), tpe[-1]):
        params = doc["params"]
        reference = gridsearch_means(
            doc["library"], data, params, {}, metric="roc_auc", folds=3, seed=4
        )
        assert abs(doc["score"] - reference[params_key(params)]) <= 1e-9, params


def noop_tpe(name: str, n: int, sleep_s: float) -> dict[str, Any]:
    return {
        "name": name,
        "dataset": "iris",
        "cv": {"folds": 2, "seed": 5},
        "search": {
            "noop": {
                "fixed": {"sleep_s": sleep_s},
                "tpe": {
                    "n_trials": n,
                    "max_in_flight": 3,
                    "n_startup": 4,
                    "space": {"score": {"uniform": [0.0, 1.0]}},
                },
            }
        },
    }


@pytest.mark.timeout(300)
def test_a_cancelled_adaptive_study_decides_nothing_more_and_a_resume_finishes_it(
    settings: ClientSettings, pipeline: Pipeline
) -> None:
    pipeline.start_all(workers=2)
    client = Client(settings)
    db = connect_store(settings)
    study_id = client.submit(noop_tpe("cancel-tpe", 24, 0.3))
    wait_until(
        lambda: db.trials.count_documents({"study_id": study_id}) >= 5, what="the first results"
    )
    client.cancel(study_id)
    # What was in flight ends; after that the planner decides nothing for the study.
    wait_until(
        lambda: (
            db.trials.count_documents({"study_id": study_id})
            >= db.planned.count_documents({"study_id": study_id}) - 3
        ),
        what="the trials in flight to end",
    )
    decided = db.planned.count_documents({"study_id": study_id})
    assert decided < 24

    client.resume(study_id)
    status = client.wait(study_id, timeout_s=240)
    assert (status.n_trials, status.done) == (24, 24)
    assert db.planned.count_documents({"study_id": study_id}) == 24
    ids = [d["_id"] for d in db.trials.find({"study_id": study_id})]
    assert len(ids) == 24 == len(set(ids))
    # Resumed with a larger budget (a fixed spec): the search goes on from its 24 results.
    client.resume(study_id, noop_tpe("cancel-tpe", 30, 0.3))
    status = client.wait(study_id, timeout_s=240)
    assert (status.n_trials, status.done) == (30, 30)
    assert db.trials.count_documents({"study_id": study_id}) == 30
