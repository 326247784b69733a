from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet.client import Client
from tunefleet_contract.messages import (
    StudyRegistered,
    StudyRequest,
    TrialMessage,
    TrialsPlanned,
    decode_event,
)
from tunefleet_contract.topology import Topology
from tunefleet_dev.devservices import free_port
from tunefleet_publisher.planner import expand
from tunefleet_publisher.publisher import Publisher
from tunefleet_runtime.broker import REASON_HEADER, publish
from tunefleet_runtime.settings import ClientSettings, PublisherSettings
from tunefleet_runtime.validation import parse_spec

from tests.support.broker import Running, queue_depth, take
from tests.support.waiting import wait_until

SPEC = {
    "name": "pub",
    "dataset": "iris",
    "chunk_size": 3,
    "search": {
        "xgboost": {"fixed": {"n_estimators": 5}, "grid": {"max_depth": [2, 3, 4, 5]}},
        "lightgbm": {"grid": {"num_leaves": [4, 8, 16]}},
    },
}


def publisher_settings(settings: ClientSettings) -> PublisherSettings:
    return PublisherSettings(**settings.model_dump())


def test_study_becomes_confirmed_chunks_with_deterministic_ids(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    run_service(Publisher(publisher_settings(settings)))
    study_id = Client(settings).submit(SPEC)

    planned, registered = (
        decode_event(body) for _, _, body in take(channel, topology.events_queue, 2)
    )
    # The plan is recorded first, in planning order; then the study, before any trial.
    expected_order = [t.trial_id for t in expand(parse_spec(SPEC), study_id)]
    assert isinstance(planned, TrialsPlanned) and planned.revision == 0
    assert [t.trial_id for t in planned.trials] == expected_order
    assert isinstance(registered, StudyRegistered)
    assert registered.study_id == study_id and registered.n_trials == 7
    assert (registered.published, registered.kept) == (7, 0)

    messages = [TrialMessage.decode(body) for _, _, body in take(channel, topology.trials_queue, 3)]
    # 7 trials, chunks of 3: the last chunk of each library is short (chunks never mix studies).
    assert sorted(len(m.trials) for m in messages) == [1, 3, 3]
    expected = {t.trial_id for t in expand(parse_spec(SPEC), study_id)}
    assert {t.trial_id for m in messages for t in m.trials} == expected
    assert all(m.task == "classification" and m.metric == "accuracy" for m in messages)
    assert all(m.folds == 5 and m.dataset.kind == "builtin" for m in messages)


def test_resubmitting_addresses_the_same_study_and_publishes_nothing_again(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    publisher = Publisher(publisher_settings(settings))
    run_service(publisher)
    client = Client(settings)
    first, second = client.submit(SPEC), client.submit(SPEC)
    assert first == second
    wait_until(lambda: publisher.resubmissions == 1, what="the second submission is recognised")
    ids = [
        t.trial_id
        for _, _, body in take(channel, topology.trials_queue, 3)
        for t in TrialMessage.decode(body).trials
    ]
    assert len(ids) == len(set(ids)) == 7
    assert queue_depth(channel, topology.trials_queue) == 0


def test_bad_request_is_dead_lettered_and_publisher_keeps_going(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    running = run_service(Publisher(publisher_settings(settings)))
    publish(channel, topology.studies_exchange, "study", b'{"schema_version": 1, "kind": "x"}')
    _, props, body = take(channel, topology.dead_letter_queue, 1)[0]
    assert body == b'{"schema_version": 1, "kind": "x"}'
    assert "expected a 'study.request' message" in props.headers[REASON_HEADER]
    assert running.alive
    Client(settings).submit(SPEC)
    take(channel, topology.trials_queue, 3)
    assert queue_depth(channel, topology.studies_queue) == 0


def test_a_resume_waits_for_the_store_instead_of_being_refused(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A resume's plan depends on the stored results: with the store away, the request must
    # wait for it (requeued), not go to the dead letters as if it were bad.
    spec = parse_spec(SPEC)
    request = StudyRequest(study_id=spec.study_id(), spec=spec, submitted_at=1.0, revision=1)
    away = publisher_settings(settings).model_copy(
        update={"mongodb_url": f"mongodb://127.0.0.1:{free_port()}/"}
    )
    blocked = run_service(Publisher(away))
    publish(channel, topology.studies_exchange, "study", request.encode())
    wait_until(
        lambda: "store unavailable" in caplog.text, what="the planner to find the store away"
    )
    blocked.stop()
    assert queue_depth(channel, topology.dead_letter_queue) == 0
    assert queue_depth(channel, topology.studies_queue) == 1  # handed back, whole

    run_service(Publisher(publisher_settings(settings)))
    planned, registered = (
        decode_event(body) for _, _, body in take(channel, topology.events_queue, 2)
    )
    assert isinstance(planned, TrialsPlanned) and planned.revision == 1
    assert isinstance(registered, StudyRegistered) and registered.published == 7
