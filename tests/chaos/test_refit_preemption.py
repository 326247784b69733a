"""A refit is a message like a trial: a worker killed while it trains one leaves it to the
broker, another worker takes it, and the model is stored once."""

from __future__ import annotations

import time

import pytest
from tunefleet.client import Client
from tunefleet_dev.devservices import Pipeline
from tunefleet_runtime.broker import connect, topology_of
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store

from tests.support.broker import queue_depth
from tests.support.tables import mixed_table

pytestmark = pytest.mark.services


@pytest.mark.timeout(600)
def test_a_refit_survives_its_workers_death(pipeline: Pipeline, settings: ClientSettings) -> None:
    pipeline.start("collector")
    pipeline.start("publisher")
    first = pipeline.start("worker", "w-killed")
    client = Client(settings)
    # One trial, slow enough to train (seconds) that the kill lands while it is in hand.
    spec = {
        "name": "refit-death",
        "dataset": {"kind": "upload", "target": "target"},
        "cv": {"folds": 2},
        "search": {"xgboost": {"fixed": {"n_estimators": 1500, "max_depth": 6}}},
    }
    study = client.submit(spec, data=mixed_table(rows=4000))
    status = client.wait(study, timeout_s=300)
    assert (status.done, status.failed) == (1, 0)

    connection, channel = connect(settings, retry_for_s=10)
    try:
        trial_id = client.refit(study)
        queue = topology_of(settings).trials_queue
        deadline = time.monotonic() + 60
        while queue_depth(channel, queue) > 0:  # delivered: in the worker's hands
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        connection.close()
    first.kill()
    first.wait()
    pipeline.start("worker", "w-second")

    model = client.wait_model(study, trial_id, timeout_s=300)
    assert (model.status, model.worker, model.attempts) == ("done", "w-second", 2)
    db = connect_store(settings)
    assert db.models.count_documents({}) == 1
    assert len(client.blobs.list("model")) == 1
