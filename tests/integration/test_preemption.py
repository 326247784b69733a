"""Preemption is not failure, through the real pipeline (RabbitMQ, FerretDB/MongoDB): a worker
told to stop hands its trial back without it counting against the delivery limit, and the
next worker resumes at the trial's first unfinished fold.

The trials queue here dead-letters a message after 2 redeliveries; one trial is preempted 3
times and still finishes, once, with the uninterrupted run's result, and its study's status
counts the preemptions apart from redeliveries and failures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pika
import pytest
from tunefleet.client import Client
from tunefleet_collector.collector import Collector
from tunefleet_contract.messages import TrialMessage, TrialResult, decode_event, decode_work
from tunefleet_contract.topology import declare_watch_queue
from tunefleet_publisher.publisher import Publisher
from tunefleet_runtime.broker import (
    ATTEMPTS_HEADER,
    PREEMPTIONS_HEADER,
    connect,
    delivery_attempt,
    preemptions,
    topology_of,
)
from tunefleet_runtime.consumer import Delivery
from tunefleet_runtime.settings import (
    ClientSettings,
    CollectorSettings,
    PublisherSettings,
    WorkerSettings,
)
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_worker.training import run_trial
from tunefleet_worker.worker import Worker

from tests.support.broker import Running, queue_depth, take
from tests.support.reference import local_study
from tests.support.waiting import wait_until

LIMIT = 2  # redeliveries before the broker dead-letters a trial message
PREEMPTIONS = 3  # more than LIMIT
FOLDS = 4
SCORE = 0.75
# One noop trial of 4 folds, each sleeping 1 s: each worker finishes one more fold, then is
# stopped; the fourth fold (the last, never checkpointed: its result follows) is the final
# worker's.
SPEC: dict[str, Any] = {
    "name": "storm",
    "dataset": "iris",
    "cv": {"folds": FOLDS, "seed": 0},
    "search": {"noop": {"grid": {"score": [SCORE], "sleep_s": [4.0]}}},
}


@pytest.fixture
def limited(settings: ClientSettings) -> ClientSettings:
    return settings.model_copy(update={"tunefleet_delivery_limit": LIMIT})


def spot_worker(settings: ClientSettings, name: str) -> Worker:
    return Worker(
        WorkerSettings(
            **settings.model_dump(),
            tunefleet_worker_name=name,
            tunefleet_grace_period_s=0.2,
            tunefleet_checkpoint_min_s=0.0,
        )
    )


@pytest.mark.timeout(300)
def test_preemptions_beyond_the_delivery_limit_never_dead_letter_a_trial(
    limited: ClientSettings, run_service: Callable[[Any], Running]
) -> None:
    connection, channel = connect(limited, retry_for_s=10)
    topology = topology_of(limited)
    results = declare_watch_queue(channel, topology, "trial.result")
    run_service(Publisher(PublisherSettings(**limited.model_dump())))
    run_service(Collector(CollectorSettings(**limited.model_dump())))
    client = Client(limited)
    study_id = str(client.submit(SPEC))
    db = connect_store(limited)

    for k in range(1, PREEMPTIONS + 1):
        worker = spot_worker(limited, f"spot-{k}")
        running = run_service(worker)
        # This worker finished (and the collector stored) one more fold than the one before.
        wait_until(
            lambda k=k: db.folds.count_documents({"study_id": study_id}) >= k,  # type: ignore[misc]
            what=f"{k} fold checkpoints",
            timeout=60,
        )
        running.stop()  # what SIGTERM does (tunefleet_runtime.service.on_shutdown)
        assert worker.handed_back == 1 and worker.trials_done == 0
        assert queue_depth(channel, topology.dead_letter_queue) == 0

    last = spot_worker(limited, "on-demand")
    run_service(last)
    status = client.wait(study_id, timeout_s=120)

    # Finished once, done, with the uninterrupted result; nothing dead-lettered or left.
    assert (status.done, status.failed, status.n_trials) == (1, 0, 1)
    (stored,) = client.trials(study_id)
    assert stored.status == "done" and stored.reason is None
    assert (stored.score, stored.fold_scores) == (SCORE, [SCORE] * FOLDS)
    assert stored.resumed_folds == FOLDS - 1  # the last worker trained the last fold only
    assert stored.attempts == PREEMPTIONS + 1 and stored.worker == "on-demand"
    assert last.folds_resumed == FOLDS - 1
    assert queue_depth(channel, topology.dead_letter_queue) == 0
    assert queue_depth(channel, topology.trials_queue) == 0
    published = take(channel, results, 1)  # lost 0, duplicated 0
    assert isinstance(decode_event(published[0][2]), TrialResult)
    assert channel.basic_get(results, auto_ack=True)[0] is None

    # The status counts the preemptions, apart from redeliveries and failures.
    assert (status.preempted, status.preemptions) == (1, PREEMPTIONS)
    assert (status.redelivered, status.redeliveries) == (0, 0)
    snapshot = client.snapshot(study_id)
    assert (snapshot.preempted, snapshot.preemptions) == (1, PREEMPTIONS)
    detail = client.trial(stored.trial_id)
    assert detail is not None
    assert [(s.attempt, s.preemptions) for s in detail.starts] == [
        (a, a - 1) for a in range(1, PREEMPTIONS + 2)
    ]
    connection.close()


@pytest.mark.timeout(120)
def test_a_death_between_hand_back_and_ack_gives_a_duplicate_never_a_loss(
    limited: ClientSettings, run_service: Callable[[Any], Running]
) -> None:
    """The crash window of a hand-back: the new message is confirmed, the worker dies before
    its ack. Both copies come back; the trial is computed (at most) twice, stored once."""
    connection, channel = connect(limited, retry_for_s=10)
    topology = topology_of(limited)
    run_service(Publisher(PublisherSettings(**limited.model_dump())))
    client = Client(limited)
    study_id = str(client.submit({**SPEC, "search": {"noop": {"grid": {"score": [SCORE]}}}}))

    # A worker's connection that takes the trial, hands it back, and dies before the ack.
    doomed, doomed_channel = connect(limited, retry_for_s=10)
    doomed_channel.basic_qos(prefetch_count=1)
    method, properties, body = _got(doomed_channel, topology.trials_queue, "the trial message")
    delivery = Delivery(
        doomed,
        doomed_channel,
        topology,
        topology.trials_queue,
        method.delivery_tag,
        properties,
        body,
        decode_work(body),
    )
    delivery.hand_back()  # the worker's own hand-back
    doomed.close()  # dies: unacked, the original comes back too

    copies = [_got(channel, topology.trials_queue, f"copy {i}") for i in (1, 2)]
    counted = sorted((preemptions(p), delivery_attempt(p)) for _, p, _ in copies)
    # The hand-back's copy (1 preemption, attempt 2) and the original's redelivery (attempt 2).
    assert counted == [(0, 2), (1, 2)]
    handed = next(p for _, p, _ in copies if preemptions(p))
    assert handed.headers[PREEMPTIONS_HEADER] == 1 and handed.headers[ATTEMPTS_HEADER] == 1
    assert handed.headers.get("x-delivery-count", 0) == 0  # a new message: counted from 0
    assert all(isinstance(decode_work(b), TrialMessage) for _, _, b in copies)
    for method, _, _ in copies:
        channel.basic_nack(method.delivery_tag, requeue=True)  # to the workers

    run_service(Collector(CollectorSettings(**limited.model_dump())))
    run_service(spot_worker(limited, "w"))
    status = client.wait(study_id, timeout_s=60)
    assert (status.done, status.failed) == (1, 0)
    wait_until(lambda: queue_depth(channel, topology.trials_queue) == 0, what="both copies taken")
    (stored,) = client.trials(study_id)  # duplicated 0: one result
    assert stored.score == SCORE
    assert queue_depth(channel, topology.dead_letter_queue) == 0
    connection.close()


Got = tuple[pika.spec.Basic.GetOk, pika.BasicProperties, bytes]


def _got(channel: Any, queue: str, what: str) -> Got:
    """One message from `queue`, unacked (it stays in hand until acked or nacked)."""

    def get() -> Got | None:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        return None if method is None else (method, properties, body)

    found = wait_until(get, what=what, timeout=30)
    assert found is not None
    return found


class Abandoning(Worker):
    """A worker as it was before hand-backs: on a stop it abandons the trial in hand, and the
    broker redelivers it (one more delivery counted). Its redelivery resumes from the fold
    checkpoints all the same."""

    def _hand_back(self, job: Any) -> bool:
        return False


@pytest.mark.timeout(300)
def test_a_redelivered_xgboost_trial_resumes_from_its_checkpoints_bit_for_bit(
    settings: ClientSettings, run_service: Callable[[Any], Running]
) -> None:
    fixed = {"max_depth": 8, "learning_rate": 0.02, "subsample": 0.8}
    grid = {"n_estimators": [3000]}  # about half a second per fold, 3 folds
    spec = {
        "name": "redelivered",
        "dataset": "breast_cancer",
        "metric": "roc_auc",
        "cv": {"folds": 3, "seed": 0},
        "search": {"xgboost": {"fixed": fixed, "grid": grid}},
    }
    ctx, (trial,), _ = local_study(
        "xgboost", fixed, grid, "breast_cancer", "roc_auc", folds=3, seed=0
    )
    expected = run_trial(ctx, trial)  # uninterrupted, in this process

    run_service(Publisher(PublisherSettings(**settings.model_dump())))
    run_service(Collector(CollectorSettings(**settings.model_dump())))
    client = Client(settings)
    study_id = str(client.submit(spec))
    db = connect_store(settings)
    first = Abandoning(
        WorkerSettings(
            **settings.model_dump(),
            tunefleet_worker_name="abandons",
            tunefleet_grace_period_s=0.0,
            tunefleet_checkpoint_min_s=0.0,
        )
    )
    running = run_service(first)
    wait_until(
        lambda: db.folds.count_documents({"study_id": study_id}) >= 1,
        what="a fold checkpoint",
        timeout=120,
    )
    running.stop()
    assert first.trials_done == 0 and first.handed_back == 0
    if client.trials(study_id):
        pytest.skip("the machine was too fast: the trial finished before its worker stopped")

    run_service(spot_worker(settings, "next"))
    status = client.wait(study_id, timeout_s=240)
    (stored,) = client.trials(study_id)
    assert stored.params == trial.params and stored.worker == "next"
    assert (stored.score, stored.score_std, stored.fold_scores) == (
        expected.score,
        expected.score_std,
        expected.fold_scores,
    )
    assert stored.resumed_folds is not None and stored.resumed_folds >= 1
    # A redelivery by the broker (the old way), not a preemption: counted as such.
    assert stored.attempts == 2
    assert (status.redeliveries, status.preemptions) == (1, 0)
