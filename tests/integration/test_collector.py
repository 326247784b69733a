from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_collector.collector import Collector
from tunefleet_contract.messages import (
    RoundCheckpoint,
    StudyRegistered,
    TrialMessage,
    TrialResult,
    TrialSpec,
    TrialsStarted,
)
from tunefleet_contract.topology import Topology
from tunefleet_publisher.planner import expand
from tunefleet_runtime.broker import REASON_HEADER, dead_letter, publish
from tunefleet_runtime.settings import ClientSettings, CollectorSettings
from tunefleet_runtime.store import study_status
from tunefleet_runtime.store.mongo import MongoStore, connect_store
from tunefleet_runtime.validation import parse_spec

from tests.support.broker import Running, queue_depth, take
from tests.support.waiting import wait_until

SPEC = parse_spec(
    {"name": "col", "dataset": "iris", "search": {"noop": {"grid": {"score": [0.1, 0.2, 0.3]}}}}
)
STUDY = SPEC.study_id()
TRIALS = list(expand(SPEC, STUDY))


def result(trial: TrialSpec, **fields: Any) -> TrialResult:
    score = trial.params["score"]
    base: dict[str, Any] = {
        "study_id": STUDY,
        "trial_id": trial.trial_id,
        "library": "noop",
        "params": trial.params,
        "status": "done",
        "score": score,
        "fold_scores": [score] * 3,
        "worker": "w1",
        "finished_at": time.time(),
    }
    return TrialResult.model_validate({**base, **fields})


def wait_for(check: Callable[[], bool], timeout: float = 60) -> None:
    wait_until(check, what="the collector to store it", timeout=timeout)


def test_stores_each_trial_once_and_acks(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    run_service(Collector(CollectorSettings(**settings.model_dump())))
    ex = topology.events_exchange
    registered = StudyRegistered(
        study_id=STUDY, spec=SPEC, n_trials=3, submitted_at=1.0, published_at=2.0
    )
    publish(channel, ex, "study.registered", registered.encode())
    publish(channel, ex, "study.registered", registered.encode())  # a republished study
    started = TrialsStarted(
        study_id=STUDY,
        trial_ids=[t.trial_id for t in TRIALS],
        worker="w1",
        attempt=1,
        started_at=1.0,
    )
    publish(channel, ex, "trial.started", started.encode())
    for trial in TRIALS[:2]:
        publish(channel, ex, "trial.result", result(trial).encode())
    # A redelivered trial finishes twice; the first stored result stands.
    publish(channel, ex, "trial.result", result(TRIALS[0], score=0.9, attempts=2).encode())

    db = connect_store(settings)
    wait_for(lambda: db.trials.count_documents({"study_id": STUDY}) == 2)
    wait_for(lambda: queue_depth(channel, topology.events_queue) == 0)
    assert db.studies.count_documents({}) == 1
    stored = db.trials.find_one({"_id": TRIALS[0].trial_id})
    assert stored is not None and stored["score"] == 0.1 and stored["fold_scores"] == [0.1] * 3

    status = study_status(MongoStore(db), STUDY)
    assert status is not None
    assert (status.n_trials, status.done, status.running, status.queued) == (3, 2, 1, 0)
    assert status.best_score == 0.2 and status.workers == 1


def test_dead_lettered_trials_become_failed_results(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    run_service(Collector(CollectorSettings(**settings.model_dump())))
    # A registered study's (a dead letter of a study never registered records nothing).
    registered = StudyRegistered(
        study_id=STUDY, spec=SPEC, n_trials=3, submitted_at=1.0, published_at=2.0
    )
    publish(channel, topology.events_exchange, "study.registered", registered.encode())
    message = TrialMessage(
        study_id=STUDY,
        dataset=SPEC.dataset,
        task="classification",
        metric="accuracy",
        folds=3,
        seed=0,
        trials=TRIALS[2:],
    )
    dead_letter(channel, topology, message.encode(), None, "dataset: unreadable", "trials")
    db = connect_store(settings)
    wait_for(lambda: db.trials.count_documents({"_id": TRIALS[2].trial_id}) == 1)
    stored = db.trials.find_one({"_id": TRIALS[2].trial_id})
    assert stored is not None
    assert (stored["status"], stored["reason"], stored["error"]) == (
        "failed",
        "rejected",
        "dataset: unreadable",
    )
    # The dead letter itself stays where people can read it.
    _, props, _ = take(channel, topology.dead_letter_queue, 1)[0]
    assert props.headers[REASON_HEADER] == "dataset: unreadable"


def test_bad_event_is_dead_lettered_and_collector_survives(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    running = run_service(Collector(CollectorSettings(**settings.model_dump())))
    publish(channel, topology.events_exchange, "trial.result", b'{"schema_version": 1}')
    _, props, _ = take(channel, topology.dead_letter_queue, 1)[0]
    assert "unknown event kind None" in props.headers[REASON_HEADER]
    publish(channel, topology.events_exchange, "trial.result", result(TRIALS[1]).encode())
    db = connect_store(settings)
    wait_for(lambda: db.trials.count_documents({}) == 1)
    assert running.alive


def test_a_bad_round_checkpoint_is_dead_lettered_with_its_reason(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    """A round checkpoint that cannot be stored as it is (a round past the fold's last) goes
    to the dead-letter queue with what is wrong; a good one after it is stored, once."""
    running = run_service(Collector(CollectorSettings(**settings.model_dump())))
    good = RoundCheckpoint(
        study_id="s",
        trial_id=TRIALS[0].trial_id,
        library="xgboost",
        fold=0,
        folds=3,
        round=40,
        rounds=100,
        sha256="a" * 64,
        format="ubj",
        size=10,
        saved_at=1.0,
    )
    bad = good.encode().replace(b'"round":40', b'"round":100')
    publish(channel, topology.events_exchange, "round.checkpoint", bad)
    _, props, _ = take(channel, topology.dead_letter_queue, 1)[0]
    assert "round 100 is not before the last of 100" in props.headers[REASON_HEADER]
    for _ in range(2):  # a duplicate: the first record stands
        publish(channel, topology.events_exchange, "round.checkpoint", good.encode())
    db = connect_store(settings)
    wait_for(lambda: db.rounds.count_documents({}) == 1)
    assert running.alive
