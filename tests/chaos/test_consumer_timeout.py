"""A trial longer than the broker's consumer_timeout is computed once: the broker takes the
delivery back while it runs, its result is kept, and the redelivery is skipped (issue 11.4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tunefleet.client import Client
from tunefleet_contract.messages import TrialResult, decode_event
from tunefleet_contract.topology import declare_watch_queue
from tunefleet_dev.devservices import LocalRabbitMQ, Pipeline, Services
from tunefleet_runtime.broker import connect, topology_of
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store

from tests.support.waiting import wait_until

pytestmark = pytest.mark.services

TIMEOUT_MS = 3000
TRIAL_S = 7.0  # over two consumer timeouts


@pytest.fixture(scope="module")
def short_timeout_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbitMQ]:
    """A broker of this module's own whose consumer_timeout is 3 s, checked twice a second."""
    rabbit = LocalRabbitMQ(
        tmp_path_factory.mktemp("short-timeout"),
        consumer_timeout_ms=TIMEOUT_MS,
        channel_tick_ms=500,
    )
    rabbit.start()
    yield rabbit
    rabbit.stop()


class _Results:
    """Every result event published in the namespace, counted per trial."""

    def __init__(self, settings: ClientSettings) -> None:
        self.connection, self.channel = connect(settings, retry_for_s=10)
        self.queue = declare_watch_queue(self.channel, topology_of(settings), "trial.result")
        self.trials: list[str] = []

    def drain(self) -> list[str]:
        while True:
            method, _props, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                return self.trials
            event = decode_event(body)
            assert isinstance(event, TrialResult)
            self.trials.append(event.trial_id)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_trial_past_consumer_timeout_is_computed_once(
    short_timeout_broker: LocalRabbitMQ,
    services: Services,
    isolation: dict[str, str],
    tmp_path: Path,
    workers: int,
) -> None:
    own = Services(short_timeout_broker.url, services.mongodb_url, origin="local")
    settings = ClientSettings(
        rabbitmq_url=own.rabbitmq_url,
        mongodb_url=own.mongodb_url,
        tunefleet_namespace=isolation["TUNEFLEET_NAMESPACE"],
        mongodb_database=isolation["MONGODB_DATABASE"],
    )
    results = _Results(settings)
    with Pipeline(own, tmp_path / "logs", env=dict(isolation)) as pipeline:
        pipeline.start_all(workers=workers)
        spec = {
            "name": "long",
            "dataset": "iris",
            "cv": {"folds": 2},
            "search": {"noop": {"fixed": {"sleep_s": TRIAL_S, "score": 0.5}}},
        }
        study_id = str(Client(settings).submit(spec))
        db = connect_store(settings)
        wait_until(lambda: db.trials.count_documents({"study_id": study_id}) == 1, what="a result")
        stored = db.trials.find_one({"study_id": study_id})
        assert stored is not None and stored["status"] == "done", stored
        # The broker did take the delivery back while the trial ran ...
        wait_until(
            lambda: "closed the trials channel after" in _worker_logs(tmp_path),
            what="a worker saw its channel closed under the trial",
        )
        # ... and its redelivery was skipped or stopped: one result, never a second one.
        wait_until(lambda: "settled" in _worker_logs(tmp_path), what="the redelivery was settled")
        wait_until(lambda: _queue_empty(settings), what="the trials queue is empty")
        assert results.drain().count(stored["_id"]) == 1, _worker_logs(tmp_path)
        dead = db.trials.count_documents({"study_id": study_id, "reason": "delivery-limit"})
        assert dead == 0
    results.connection.close()


def _worker_logs(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in (tmp_path / "logs").glob("worker-*.log"))


def _queue_empty(settings: ClientSettings) -> bool:
    connection, channel = connect(settings, retry_for_s=10)
    try:
        declared = channel.queue_declare(topology_of(settings).trials_queue, passive=True)
        return int(declared.method.message_count) == 0
    finally:
        connection.close()
