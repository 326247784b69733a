"""Submitting a study again never computes its trials again: not at once (two identical
submissions), not half-way, not once it has finished (issue 11.3)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet.client import Client
from tunefleet_collector.collector import Collector
from tunefleet_contract.messages import StudyRequest, TrialMessage
from tunefleet_contract.topology import Topology
from tunefleet_publisher.publisher import Publisher
from tunefleet_runtime.broker import publish
from tunefleet_runtime.settings import ClientSettings, CollectorSettings, PublisherSettings
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_runtime.validation import parse_spec

from tests.support.broker import Running, queue_depth, take
from tests.support.waiting import wait_until

SPEC = {
    "name": "again",
    "dataset": "iris",
    "chunk_size": 2,
    "search": {"noop": {"grid": {"score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}}},
}
N_TRIALS = 6


def _queued_trials(channel: BlockingChannel, topology: Topology, messages: int) -> list[str]:
    return [
        t.trial_id
        for _, _, body in take(channel, topology.trials_queue, messages)
        for t in TrialMessage.decode(body).trials
    ]


def test_identical_submissions_at_once_and_later_publish_each_trial_once(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    client = Client(settings)
    # Two at once: both requests are queued before the planner takes either.
    threads = [threading.Thread(target=client.submit, args=(SPEC,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until(lambda: queue_depth(channel, topology.studies_queue) == 2, what="two requests")
    publisher = Publisher(PublisherSettings(**settings.model_dump()))
    run_service(publisher)
    run_service(Collector(CollectorSettings(**settings.model_dump())))
    wait_until(lambda: publisher.resubmissions == 1, what="the second request is recognised")
    trials = _queued_trials(channel, topology, N_TRIALS // 2)
    assert sorted(trials) == sorted(set(trials)) and len(trials) == N_TRIALS
    assert queue_depth(channel, topology.trials_queue) == 0

    # Later, with the study stored (here: planned, nothing run yet), from a new planner too.
    study_id = parse_spec(SPEC).study_id()
    db = connect_store(settings)
    wait_until(lambda: db.studies.find_one({"_id": study_id}), what="the study is stored")
    fresh = Publisher(PublisherSettings(**settings.model_dump()))
    run_service(fresh)
    client.submit(SPEC)
    client.submit(SPEC)
    wait_until(lambda: publisher.resubmissions + fresh.resubmissions == 3, what="both recognised")
    assert queue_depth(channel, topology.trials_queue) == 0


@pytest.mark.parametrize(
    ("study_id", "reason"),
    [("other-0123456789ab", "is not this spec's id"), ("again-0123456789ab", "not this spec")],
)
def test_a_request_under_another_studys_id_is_refused(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
    study_id: str,
    reason: str,
) -> None:
    run_service(Publisher(PublisherSettings(**settings.model_dump())))
    request = StudyRequest(study_id=study_id, spec=parse_spec(SPEC), submitted_at=1.0)
    publish(channel, topology.studies_exchange, "study", request.encode())
    wait_until(lambda: queue_depth(channel, topology.dead_letter_queue) == 1, what="refused")
    assert queue_depth(channel, topology.trials_queue) == 0
    (_, properties, _) = take(channel, topology.dead_letter_queue, 1)[0]
    assert reason in str(properties.headers)
