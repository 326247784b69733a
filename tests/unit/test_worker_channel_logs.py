"""What a worker logs when its trials channel closes says who closed it and what becomes of the
trials in hand: a normal SIGTERM used to log "the broker closed the trials channel ((200,
'Normal shutdown')); consuming again", and a worker that lost its connection logged the
consumer_timeout warning ("its trials go on, their results are kept") although it abandons
them. The callbacks, driven directly (no broker: what they decide is pure logic)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pika.exceptions
import pytest
from tunefleet_contract.messages import TrialMessage
from tunefleet_runtime.settings import WorkerSettings
from tunefleet_worker.worker import Worker, _Job

MESSAGE = TrialMessage.model_validate(
    {
        "study_id": "s-0123456789ab",
        "dataset": {"kind": "builtin", "name": "iris"},
        "task": "classification",
        "metric": "accuracy",
        "folds": 2,
        "seed": 0,
        "trials": [
            {"trial_id": t * 24, "library": "noop", "params": {"sleep_s": 1.0}} for t in "ab"
        ],
    }
)


@dataclass
class _Delivery:
    message: TrialMessage


@pytest.fixture
def worker(tmp_path: Path) -> Worker:
    settings = WorkerSettings(
        rabbitmq_url="amqp://u:p@127.0.0.1:1/%2F", tunefleet_cache_dir=tmp_path / "cache"
    )
    return Worker(settings)


def _hold(worker: Worker) -> _Job:
    job = _Job(_Delivery(MESSAGE), None)  # type: ignore[arg-type]
    worker._job = job
    return job


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_our_own_shutdown_is_not_reported_as_the_broker_closing_the_channel(
    worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    normal = pika.exceptions.ChannelClosedByClient(200, "Normal shutdown")
    worker._consumer_closed(None, normal)
    worker._consumer_closed(None, pika.exceptions.ConnectionClosedByClient(200, "Normal shutdown"))
    assert _warnings(caplog) == []
    assert not worker._runtime._restart.is_set()  # not "consuming again"


def test_a_lost_connection_says_the_trials_are_abandoned_and_delivered_again(
    worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    job = _hold(worker)
    job.published.append("a" * 24)
    # A frozen worker: the broker dropped it for missed heartbeats.
    worker._consumer_closed(None, pika.exceptions.StreamLostError("Transport indicated EOF"))
    assert not job.orphaned and _warnings(caplog) == []
    worker._connection_lost()
    (line,) = _warnings(caplog)
    assert "lost the broker connection" in line and "s-0123456789ab" in line
    assert "its 1 trials without a confirmed result are abandoned" in line
    assert "delivers the message again" in line and "kept and" not in line
    assert job.abandon.is_set() and worker._job is None


def test_a_consumer_timeout_keeps_training_then_a_lost_connection_abandons_after_all(
    worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    job = _hold(worker)
    timeout = pika.exceptions.ChannelClosedByBroker(406, "delivery acknowledgement timed out")
    worker._consumer_closed(None, timeout)
    assert job.orphaned and not job.abandon.is_set()
    assert "closed the trials channel after" in _warnings(caplog)[0]
    worker._connection_lost()
    assert "abandoned after all" in _warnings(caplog)[1] and job.abandon.is_set()
