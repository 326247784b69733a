"""Preemption is not failure, a failure is a result: one behaviour of issue 3 per test, each on
real processes (the fault-injection run mixes them all; these say which one broke)."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import pytest
from pymongo.database import Database
from tunefleet.cli import app
from tunefleet.client import Client
from tunefleet_dev.devservices import Pipeline
from tunefleet_publisher.planner import expand
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_runtime.validation import parse_spec
from typer.testing import CliRunner

from tests.support.waiting import wait_until

pytestmark = pytest.mark.services

Doc = dict[str, Any]


def _until(what: str, probe: Callable[[], Any], timeout: float = 120) -> Any:
    return wait_until(probe, what=what, timeout=timeout)


def _one_trial(settings: ClientSettings, **params: Any) -> tuple[Database[Doc], str]:
    spec = {
        "name": "one",
        "dataset": "iris",
        "cv": {"folds": 2},
        "search": {"noop": {"fixed": params}},
    }
    study_id = str(Client(settings).submit(spec))
    (trial,) = expand(parse_spec(spec), study_id)
    return connect_store(settings), trial.trial_id


def _started(db: Database[Doc], trial_id: str, attempt: int = 1) -> Doc | None:
    return db.starts.find_one({"trial_id": trial_id, "attempt": attempt})


def test_sigterm_lets_the_trial_in_hand_finish_within_the_grace_period(
    pipeline: Pipeline, settings: ClientSettings
) -> None:
    pipeline.start("collector")
    pipeline.start("publisher")
    worker = pipeline.start("worker", "w-graceful", TUNEFLEET_GRACE_PERIOD_S="60")
    db, trial_id = _one_trial(settings, sleep_s=2.0, score=0.25)
    _until("the trial to start", lambda: _started(db, trial_id))

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=90) == 0

    result = _until("the result", lambda: db.trials.find_one({"_id": trial_id}))
    assert (result["status"], result["score"], result["worker"]) == ("done", 0.25, "w-graceful")
    assert result["attempts"] == 1
    assert db.starts.count_documents({"trial_id": trial_id}) == 1


def test_sigterm_hands_back_a_trial_longer_than_the_grace_period_as_a_preemption(
    pipeline: Pipeline, settings: ClientSettings
) -> None:
    pipeline.start("collector")
    pipeline.start("publisher")
    worker = pipeline.start("worker", "w-preempted", TUNEFLEET_GRACE_PERIOD_S="0.5")
    db, trial_id = _one_trial(settings, sleep_s=3.0, score=0.5)
    _until("the trial to start", lambda: _started(db, trial_id))

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert db.trials.find_one({"_id": trial_id}) is None  # handed back, not finished or failed

    pipeline.start("worker", "w-next")
    result = _until("the result", lambda: db.trials.find_one({"_id": trial_id}))
    assert (result["status"], result["worker"], result["attempts"]) == ("done", "w-next", 2)
    # A preemption, counted apart: not a redelivery, nothing towards the delivery limit.
    assert _started(db, trial_id, 2)["preemptions"] == 1  # type: ignore[index]
    status = Client(settings).status(result["study_id"])
    assert status is not None and (status.redelivered, status.redeliveries) == (0, 0)
    assert (status.preempted, status.preemptions) == (1, 1)
    # `tunefleet status` shows it.
    env = {
        "RABBITMQ_URL": str(settings.rabbitmq_url),
        "MONGODB_URL": str(settings.mongodb_url),
        "TUNEFLEET_NAMESPACE": settings.tunefleet_namespace,
        "MONGODB_DATABASE": settings.mongodb_database,
    }
    shown = CliRunner().invoke(app, ["status", result["study_id"], "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    keys = ("done", "redelivered", "redeliveries", "preempted", "preemptions")
    assert {k: json.loads(shown.stdout)[k] for k in keys} == {
        "done": 1,
        "redelivered": 0,
        "redeliveries": 0,
        "preempted": 1,
        "preemptions": 1,
    }
    table = CliRunner().invoke(app, ["status", result["study_id"]], env=env)
    assert "1 trials handed back, 1 times in all" in table.stdout


def test_kill_9_mid_trial_loses_nothing(pipeline: Pipeline, settings: ClientSettings) -> None:
    pipeline.start("collector")
    pipeline.start("publisher")
    worker = pipeline.start("worker", "w-killed")
    db, trial_id = _one_trial(settings, sleep_s=3.0, score=0.75)
    _until("the trial to start", lambda: _started(db, trial_id))

    worker.kill()
    worker.wait()
    pipeline.start("worker", "w-after")
    result = _until("the result", lambda: db.trials.find_one({"_id": trial_id}))
    assert (result["status"], result["score"], result["worker"]) == ("done", 0.75, "w-after")
    assert result["attempts"] == 2
    assert {d["worker"] for d in db.starts.find({"trial_id": trial_id})} == {"w-killed", "w-after"}


def test_training_errors_are_recorded_once_with_the_library_message(
    pipeline: Pipeline, settings: ClientSettings
) -> None:
    pipeline.start_all(workers=1)
    spec = {
        "name": "errors",
        "dataset": "iris",
        "cv": {"folds": 2},
        "search": {
            "noop": {"fixed": {"fail": True}},
            # LightGBM refuses a random forest without bagging.
            "lightgbm": {"fixed": {"boosting_type": "rf", "n_estimators": 5}},
        },
    }
    client = Client(settings)
    study_id = str(client.submit(spec))
    status = client.wait(study_id, timeout_s=120)
    assert (status.done, status.failed) == (0, 2)
    db = connect_store(settings)
    docs = {d["library"]: d for d in db.trials.find({"study_id": study_id})}
    assert docs["noop"]["error"] == "RuntimeError: noop model asked to fail"
    assert "bagging" in docs["lightgbm"]["error"]
    for doc in docs.values():
        assert (doc["status"], doc["reason"], doc["attempts"]) == ("failed", "training-error", 1)
        # Not retried: one delivery, one start.
        assert db.starts.count_documents({"trial_id": doc["_id"]}) == 1


def test_a_trial_longer_than_the_heartbeat_interval_completes(
    pipeline: Pipeline, settings: ClientSettings
) -> None:
    # With 1 s heartbeats RabbitMQ drops a connection that is silent for ~2 s; the trial
    # sleeps 6 s. It completes on its first delivery only if heartbeats flow while it trains.
    pipeline.start("collector")
    pipeline.start("publisher")
    pipeline.start("worker", "w-heartbeat", TUNEFLEET_HEARTBEAT_S="1")
    db, trial_id = _one_trial(settings, sleep_s=6.0, score=0.9)
    result = _until("the result", lambda: db.trials.find_one({"_id": trial_id}))
    assert (result["status"], result["attempts"], result["worker"]) == ("done", 1, "w-heartbeat")
    assert db.starts.count_documents({"trial_id": trial_id}) == 1
    log = (pipeline.log_dir / "w-heartbeat.log").read_text()
    assert "connection lost" not in log
