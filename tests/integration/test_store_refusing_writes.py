"""A store that cannot write is an outage: events wait unacked and land when it recovers,
with no manual step; only a document the store would refuse on any day is dead-lettered."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pymongo.database import Database
from tunefleet_collector.collector import Collector
from tunefleet_contract.messages import StudyRegistered, TrialResult, TrialSpec
from tunefleet_contract.topology import Topology
from tunefleet_dev.devservices import LocalMongo
from tunefleet_runtime.broker import publish
from tunefleet_runtime.settings import ClientSettings, CollectorSettings
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_runtime.validation import parse_spec

from tests.support.broker import Running, queue_depth, take
from tests.support.store_faults import refusing_writes
from tests.support.waiting import wait_until

STUDY = "refuse-0123456789ab"


def _result(n: int, **params: Any) -> TrialResult:
    trial = TrialSpec(trial_id=f"{n:024x}", library="noop", params={"score": 0.5, **params})
    return TrialResult.of(STUDY, trial, revision=0, attempts=1, status="done", score=0.5)


def _collector(
    settings: ClientSettings, run_service: Callable[[Any], Running], **overrides: Any
) -> Collector:
    """A running collector that writes a batch every 0.2 s."""
    fields = {**settings.model_dump(), "tunefleet_collector_flush_s": 0.2, **overrides}
    collector = Collector(CollectorSettings(**fields))
    run_service(collector)
    return collector


@pytest.fixture
def own_store(tmp_path: Path) -> Iterator[LocalMongo]:
    """A store of this test's own: the test breaks it."""
    store = LocalMongo(tmp_path / "store")
    store.start()
    yield store
    store.stop()


def _storing_into(
    own_store: LocalMongo,
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> tuple[Database[dict[str, Any]], Collector]:
    """A collector writing into the test's own store (batches of 5), once it has stored a
    first result there."""
    ours = ClientSettings(**{**settings.model_dump(), "mongodb_url": own_store.url})
    db = connect_store(ours)
    collector = _collector(ours, run_service, tunefleet_collector_batch=5)
    publish(channel, topology.events_exchange, "trial.result", _result(0).encode())
    wait_until(lambda: db.trials.count_documents({}) == 1, what="the first result is stored")
    return db, collector


def test_results_wait_while_the_store_refuses_writes_then_land(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
    own_store: LocalMongo,
) -> None:
    db, collector = _storing_into(own_store, settings, channel, topology, run_service)

    assert own_store.pid is not None
    with refusing_writes(own_store.pid):
        for n in range(1, 21):
            publish(channel, topology.events_exchange, "trial.result", _result(n).encode())
        # A store with a full disk still answers pings; the collector must not take the
        # refusals for the data's fault.
        assert db.client.admin.command("ping")["ok"] == 1
        wait_until(lambda: collector.failed_writes >= 5, what="the collector retries the batch")
        assert queue_depth(channel, topology.dead_letter_queue) == 0
        assert db.trials.count_documents({}) == 1
    wait_until(
        lambda: db.trials.count_documents({}) == 21, what="every result lands after recovery"
    )
    wait_until(
        lambda: queue_depth(channel, topology.events_queue) == 0, what="every event is acked"
    )
    assert queue_depth(channel, topology.dead_letter_queue) == 0


def test_results_wait_while_the_store_hangs_then_land(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
    own_store: LocalMongo,
) -> None:
    """A store that accepts connections and answers nothing (its process stopped: a hung
    disk, a paused VM): writes wait, nothing is dead-lettered, and all of it lands after."""
    db, _ = _storing_into(own_store, settings, channel, topology, run_service)

    assert own_store.pid is not None
    os.kill(own_store.pid, signal.SIGSTOP)
    try:
        for n in range(1, 21):
            publish(channel, topology.events_exchange, "trial.result", _result(n).encode())
        time.sleep(5)  # the collector is in the middle of a write the store does not answer
        assert queue_depth(channel, topology.dead_letter_queue) == 0
    finally:
        os.kill(own_store.pid, signal.SIGCONT)
    wait_until(
        lambda: db.trials.count_documents({}) == 21, what="every result lands after recovery"
    )
    wait_until(
        lambda: queue_depth(channel, topology.events_queue) == 0, what="every event is acked"
    )
    assert queue_depth(channel, topology.dead_letter_queue) == 0


def test_a_document_the_store_refuses_on_a_healthy_day_is_dead_lettered(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    db = connect_store(settings)
    _collector(settings, run_service)
    # Valid JSON and a valid message, but BSON has no integer this large.
    publish(channel, topology.events_exchange, "trial.result", _result(1, x=10**30).encode())
    publish(channel, topology.events_exchange, "trial.result", _result(2).encode())
    wait_until(
        lambda: queue_depth(channel, topology.dead_letter_queue) == 1, what="one dead letter"
    )
    wait_until(lambda: db.trials.count_documents({}) == 1, what="the good result is stored")


def test_a_batch_with_a_refused_document_goes_further_at_each_try(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    """Written delivery by delivery, 200 results take longer than the time limit of one turn
    (0.1 s here, about 3 ms a delivery): each try acks what it settled and the next goes on
    from there, so the refused one is dead-lettered and every other result lands. Each try
    used to start again from the first delivery and never reach the refused one."""
    db = connect_store(settings)
    _collector(settings, run_service, tunefleet_store_timeout_s=0.1, tunefleet_collector_batch=500)
    publish(channel, topology.events_exchange, "trial.result", _result(0).encode())
    wait_until(lambda: db.trials.count_documents({}) == 1, what="the collector writes")
    for n in range(1, 202):
        # BSON has no integer this large: the whole batch is refused, then this one alone.
        params = {"x": 10**30} if n == 121 else {}
        publish(channel, topology.events_exchange, "trial.result", _result(n, **params).encode())
    wait_until(
        lambda: db.trials.count_documents({}) == 201,
        timeout=90,
        what="every other result lands",
    )
    wait_until(
        lambda: queue_depth(channel, topology.events_queue) == 0, what="every event is acked"
    )
    assert queue_depth(channel, topology.dead_letter_queue) == 1


def test_a_registration_whose_plan_never_comes_is_set_aside_not_waited_on_for_good(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    db = connect_store(settings)
    _collector(settings, run_service, tunefleet_plan_wait_s=1.0)
    spec = parse_spec({"name": "refuse", "dataset": "iris", "search": {"noop": {"fixed": {}}}})
    first = StudyRegistered(
        study_id=STUDY, spec=spec, n_trials=0, submitted_at=1.0, published_at=2.0
    )
    publish(channel, topology.events_exchange, first.kind, first.encode())
    wait_until(lambda: db.studies.find_one({"_id": STUDY}), what="the study is registered")
    # A resume's registration, for trials no collector will ever be given the plan of.
    orphan = first.model_copy(update={"n_trials": 3, "revision": 1})
    publish(channel, topology.events_exchange, orphan.kind, orphan.encode())
    publish(channel, topology.events_exchange, "trial.result", _result(1).encode())
    wait_until(lambda: db.trials.count_documents({}) == 1, what="the result behind it is stored")
    wait_until(
        lambda: queue_depth(channel, topology.dead_letter_queue) == 1, what="it is set aside"
    )
    (_, properties, _) = take(channel, topology.dead_letter_queue, 1)[0]
    assert "planned trials stored" in str(properties.headers)
