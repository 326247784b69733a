"""A study with early stopping through the real pipeline (RabbitMQ, FerretDB/MongoDB): the
planner carries `early_stopping` to the worker, the worker's result with its curve is stored
as a valid document and read back, and the refit trains the best round."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from tunefleet.client import Client
from tunefleet.models import load_estimator
from tunefleet_collector.collector import Collector
from tunefleet_contract.libraries import catalogues
from tunefleet_contract.messages import CURVE_POINTS, TrialSpec
from tunefleet_publisher.publisher import Publisher
from tunefleet_runtime.settings import (
    ClientSettings,
    CollectorSettings,
    PublisherSettings,
    WorkerSettings,
)
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker.datasets import load_dataset
from tunefleet_worker.earlystop import run_stopped
from tunefleet_worker.training import TrialContext, library_data, make_estimator
from tunefleet_worker.worker import Worker

from tests.support.broker import Running
from tests.support.waiting import wait_until

SPEC: dict[str, Any] = {
    "name": "stopping",
    "dataset": "breast_cancer",
    "metric": "roc_auc",
    "cv": {"folds": 3, "seed": 3},
    "search": {
        "xgboost": {
            "early_stopping": {"rounds": 3, "max_rounds": 40},
            "fixed": {"max_depth": 2, "subsample": 0.8, "random_state": 1},
            "grid": {"learning_rate": [0.3]},
        },
        "lightgbm": {
            "early_stopping": {"rounds": 3, "max_rounds": 40, "metric": "binary_logloss"},
            "fixed": {"num_leaves": 5, "subsample": 0.8, "subsample_freq": 1},
            "grid": {"learning_rate": [0.3]},
        },
        "catboost": {
            "early_stopping": {"rounds": 3, "max_rounds": 40},
            "fixed": {"depth": 2, "learning_rate": 0.3},
        },
    },
}


def test_a_study_with_early_stopping_runs_stores_its_curves_and_refits_the_best_round(
    settings: ClientSettings, run_service: Callable[[Any], Running]
) -> None:
    run_service(Publisher(PublisherSettings(**settings.model_dump())))
    run_service(Collector(CollectorSettings(**settings.model_dump())))
    run_service(
        Worker(WorkerSettings(**settings.model_dump(), tunefleet_worker_name="stopping-worker"))
    )
    client = Client(settings)
    study_id = str(client.submit(SPEC))
    wait_until(
        lambda: len([r for r in client.best(study_id, n=10) if r.status == "done"]) == 3,
        what="three done trials",
        timeout=300,
    )
    spec = parse_spec(SPEC)
    data = load_dataset(spec.dataset)
    db = connect_store(settings)
    for record in client.best(study_id, n=10):
        stop = spec.search[record.library].early_stopping
        assert stop is not None and record.early_stopping is not None
        # The stored document is the worker's result, curve and all, and scores as a local
        # run of the same trial does.
        ctx = TrialContext(study_id, data, "roc_auc", 3, 3, "local", 1, 1)
        trial = TrialSpec(
            trial_id=record.trial_id, library=record.library, params=dict(record.params)
        )
        local = run_stopped(ctx, trial, stop)
        assert local.early_stopping is not None
        assert record.score == local.score
        assert record.early_stopping == local.early_stopping.model_dump()
        assert record.best_round == local.early_stopping.best_round < stop.max_rounds
        assert len(record.early_stopping["curve_mean"]) <= CURVE_POINTS + 3
        raw = db.trials.find_one({"_id": record.trial_id})
        assert raw is not None and raw["early_stopping"]["best_round"] == record.best_round

    best = client.best(study_id, n=1)[0]
    model = client.best_model(study_id, timeout_s=300)
    stored = client.model(study_id)
    assert stored is not None
    assert (stored.rounds, stored.rounds_from) == (best.best_round, "early_stopping")
    view = library_data(data, best.library)
    rounds = catalogues()[best.library].rounds[0]
    local_fit = make_estimator(best.library, data.task, {**best.params, rounds: best.best_round})
    local_fit.fit(view.X, view.y)
    assert np.array_equal(model.predict_proba(view.X), local_fit.predict_proba(view.X))
    assert load_estimator(stored, client.model_bytes(stored)) is not None
