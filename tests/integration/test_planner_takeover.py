"""Two planners, one standing by (the results queue's single active consumer), through the real
broker and store: the one that takes over drives an adaptive study from the store, not from
what it held in memory since it planned the study, and the study ends with exactly its trials.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from tunefleet.client import Client
from tunefleet_collector.collector import Collector
from tunefleet_publisher.publisher import Publisher
from tunefleet_runtime.settings import (
    ClientSettings,
    CollectorSettings,
    PublisherSettings,
    WorkerSettings,
)
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_worker.worker import Worker

from tests.support.broker import Running
from tests.support.waiting import wait_until

N_TRIALS = 10
SPEC: dict[str, Any] = {
    "name": "takeover",
    "dataset": "iris",
    "cv": {"folds": 2, "seed": 1},
    "search": {
        "xgboost": {
            "fixed": {"n_estimators": 3},
            "tpe": {
                "n_trials": N_TRIALS,
                "max_in_flight": 2,
                "n_startup": 2,
                "space": {
                    "learning_rate": {"loguniform": [0.01, 0.5]},
                    "max_depth": {"int": [1, 6]},
                },
            },
        }
    },
}


@pytest.mark.timeout(300)
def test_a_planner_that_takes_over_rebuilds_what_it_held_from_the_store(
    settings: ClientSettings,
    run_service: Callable[[Any], Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tunefleet_publisher")
    client = Client(settings)
    planner = PublisherSettings(**settings.model_dump())
    run_service(Collector(CollectorSettings(**settings.model_dump())))

    def worker() -> Running:
        return run_service(Worker(WorkerSettings(**settings.model_dump())))

    def done() -> int:
        return sum(1 for r in client.trials(study_id) if r.status == "done")

    # B plans the study, alone, and keeps its searches in memory.
    b = Publisher(planner)
    run_service(b)
    study_id = str(client.submit(SPEC))
    wait_until(lambda: client.status(study_id) is not None, what="the registration", timeout=60)
    assert study_id in b._adaptive_studies
    # A starts; B's connection ends and B comes back standing by: A takes the results.
    a = Publisher(planner)
    running_a = run_service(a)
    # A consumes right after its connect hook; B's restart waits for B's turn to end.
    wait_until(lambda: a._batch is not None, what="A connected", timeout=30)
    b_before = b._batch
    b._runtime.restart()
    wait_until(lambda: b._batch is not b_before, what="B connected again", timeout=30)
    first = worker()
    wait_until(lambda: done() >= 3, what="3 results", timeout=120)
    first.stop()
    turn = connect_store(settings).turns.find_one({"_id": "planner"})
    assert turn is not None and turn["holder"] == a.name  # A reacted to those results
    assert len(connect_store(settings).planned.distinct("_id", {"study_id": study_id})) > 2
    # A goes; B takes over with the searches it planned the study with, which A moved past.
    running_a.stop()
    worker()
    status = client.wait(study_id, timeout_s=120)

    assert (status.n_trials, status.done, status.failed) == (N_TRIALS, N_TRIALS, 0)
    db = connect_store(settings)
    planned = list(db.planned.find({"study_id": study_id}))
    assert len(planned) == N_TRIALS
    assert sorted(p["seq"] for p in planned) == list(range(N_TRIALS))  # no position twice
    assert db.trials.count_documents({"study_id": study_id}) == N_TRIALS
    took_over = [
        r.getMessage()
        for r in caplog.records
        if "reacted to results since this one last did" in r.getMessage()
    ]
    assert took_over and a.name in took_over[0]
