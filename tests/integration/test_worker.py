from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_contract.messages import (
    TrialMessage,
    TrialResult,
    TrialSpec,
    TrialsStarted,
    decode_event,
)
from tunefleet_contract.search import trial_id
from tunefleet_contract.spec import BuiltinDataset
from tunefleet_contract.topology import Topology
from tunefleet_runtime.broker import REASON_HEADER, publish
from tunefleet_runtime.settings import ClientSettings, WorkerSettings
from tunefleet_worker.worker import Worker

from tests.support.broker import Running, queue_depth, take


def worker_settings(settings: ClientSettings, **extra: Any) -> WorkerSettings:
    return WorkerSettings(**settings.model_dump(), tunefleet_worker_name="it-worker", **extra)


def trial(library: str, **params: Any) -> TrialSpec:
    return TrialSpec(trial_id=trial_id("s", library, params), library=library, params=params)


def message(*trials: TrialSpec, metric: str = "accuracy") -> TrialMessage:
    return TrialMessage(
        study_id="s",
        dataset=BuiltinDataset(name="iris"),
        task="classification",
        metric=metric,
        folds=3,
        seed=0,
        trials=list(trials),
    )


def test_trains_publishes_results_then_acks(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    run_service(Worker(worker_settings(settings)))
    chunk = message(
        trial("xgboost", n_estimators=3, max_depth=2),
        trial("lightgbm", n_estimators=3, boosting_type="rf"),  # LightGBM refuses this
        trial("catboost", iterations=3, depth=2),
    )
    publish(channel, topology.trials_exchange, "trial", chunk.encode())

    events = [decode_event(body) for _, _, body in take(channel, topology.events_queue, 4)]
    started, results = events[0], events[1:]
    assert isinstance(started, TrialsStarted)
    assert started.attempt == 1 and started.worker == "it-worker"
    assert started.trial_ids == [t.trial_id for t in chunk.trials]
    assert all(isinstance(r, TrialResult) for r in results)
    by_library = {r.library: r for r in results if isinstance(r, TrialResult)}
    assert by_library["xgboost"].status == "done" and by_library["catboost"].status == "done"
    assert by_library["lightgbm"].status == "failed"
    assert by_library["lightgbm"].reason == "training-error"
    assert queue_depth(channel, topology.trials_queue) == 0  # acked: no redelivery loop


def test_bad_messages_are_dead_lettered_with_reasons(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    run_service: Callable[[Any], Running],
) -> None:
    running = run_service(Worker(worker_settings(settings, tunefleet_max_worker_threads=4)))
    good = message(trial("noop", score=0.5))
    greedy = json.loads(message(trial("noop", n_jobs=64)).encode())
    bad_param = json.loads(good.encode())
    bad_param["trials"][0]["params"] = {"max_dept": 3}
    bad_param["trials"][0]["library"] = "xgboost"
    outside = json.loads(good.encode())
    outside["dataset"] = {"kind": "file", "path": "../../etc/passwd.csv", "target": "y"}
    bodies = [
        b"\x00\x01 not json",
        b'{"schema_version": 99, "kind": "trial.batch"}',
        json.dumps(bad_param).encode(),
        json.dumps(greedy).encode(),
        json.dumps(outside).encode(),
    ]
    for body in bodies:
        publish(channel, topology.trials_exchange, "trial", body)
    publish(channel, topology.trials_exchange, "trial", good.encode())

    dead = take(channel, topology.dead_letter_queue, len(bodies))
    reasons = {body: props.headers[REASON_HEADER] for _, props, body in dead}
    assert "not JSON" in reasons[bodies[0]]
    assert "schema_version 99" in reasons[bodies[1]]
    assert "max_dept: unknown parameter for xgboost" in reasons[bodies[2]]
    assert "n_jobs=64 is over this worker's limit of 4" in reasons[bodies[3]]
    assert "file datasets are disabled" in reasons[bodies[4]]

    # The dataset is checked on the training thread, after the start was announced: the
    # collector turns the dead-lettered message into failed results for those trials.
    events = [decode_event(body) for _, _, body in take(channel, topology.events_queue, 3)]
    results = [e for e in events if isinstance(e, TrialResult)]
    assert len(results) == 1 and results[0].score == 0.5
    assert running.alive
