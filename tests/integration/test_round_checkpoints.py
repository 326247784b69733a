"""Round checkpoints through the real pipeline (RabbitMQ, FerretDB/MongoDB, GridFS blobs): with
`checkpoint: rounds`, a worker stopped (SIGTERM) in the middle of a fold cuts it after its
current round, stores the booster, hands the trial back at once, and the next worker continues
that fold from the stored round. The trial finishes once, marked as resumed at that round, with
the uninterrupted run's score (XGBoost without subsampling continues exactly).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tunefleet.cli import app
from tunefleet.client import Client
from tunefleet_collector.collector import Collector
from tunefleet_contract.messages import TrialResult, decode_event
from tunefleet_contract.topology import declare_watch_queue
from tunefleet_publisher.publisher import Publisher
from tunefleet_runtime.broker import connect, topology_of
from tunefleet_runtime.settings import (
    ClientSettings,
    CollectorSettings,
    PublisherSettings,
    WorkerSettings,
)
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_worker.training import run_trial
from tunefleet_worker.worker import Worker
from typer.testing import CliRunner

from tests.support.broker import Running, queue_depth, take
from tests.support.reference import local_study
from tests.support.waiting import wait_until

FOLDS = 2
ROUNDS = 12000  # long enough a fold that the stop finds it in training, on a quiet machine too
FIXED: dict[str, Any] = {"max_depth": 4, "learning_rate": 0.05, "n_jobs": 1}
SPEC: dict[str, Any] = {
    "name": "rounds",
    "dataset": "breast_cancer",
    "metric": "roc_auc",
    "cv": {"folds": FOLDS, "seed": 0},
    "checkpoint": "rounds",
    "search": {"xgboost": {"fixed": FIXED, "grid": {"n_estimators": [ROUNDS]}}},
}


def worker(settings: ClientSettings, name: str) -> Worker:
    return Worker(
        WorkerSettings(
            **settings.model_dump(),
            tunefleet_worker_name=name,
            tunefleet_grace_period_s=30.0,  # the cut hands back long before
            tunefleet_checkpoint_min_s=0.0,
        )
    )


@pytest.mark.timeout(300)
def test_a_fold_stopped_mid_training_continues_from_its_round_on_the_next_worker(
    settings: ClientSettings, run_service: Callable[[Any], Running]
) -> None:
    connection, channel = connect(settings, retry_for_s=10)
    topology = topology_of(settings)
    results = declare_watch_queue(channel, topology, "trial.result")
    run_service(Publisher(PublisherSettings(**settings.model_dump())))
    run_service(Collector(CollectorSettings(**settings.model_dump())))
    client = Client(settings)
    study_id = str(client.submit(SPEC))
    db = connect_store(settings)

    spot = worker(settings, "spot")
    running = run_service(spot)
    wait_until(
        lambda: db.starts.count_documents({"study_id": study_id}) >= 1,
        what="the trial started",
        timeout=60,
    )
    running.stop()  # what SIGTERM does: the fold in training is cut at its round
    assert (spot.handed_back, spot.rounds_saved, spot.trials_done) == (1, 1, 0)
    # The next worker at once: the handed-back message carries the round checkpoint, so it
    # need not wait for the collector to have stored it.
    last = worker(settings, "on-demand")
    run_service(last)
    status = client.wait(study_id, timeout_s=240)
    stored = wait_until(
        lambda: db.rounds.find_one({"study_id": study_id}),
        what="the round checkpoint stored",
        timeout=60,
    )
    assert stored is not None
    cut = int(stored["round"])
    assert 0 < cut < ROUNDS and stored["rounds"] == ROUNDS and stored["format"] == "ubj"
    assert client.blobs.info(stored["sha256"]) is not None  # the booster, in the blob store
    assert (status.done, status.failed, status.n_trials) == (1, 0, 1)
    (result,) = client.trials(study_id)
    assert result.status == "done" and result.worker == "on-demand"
    assert result.resumed_at_round == cut  # continued from the round it was cut at
    assert last.rounds_resumed == 1 and last.trials_done == 1
    # The cost ledger counts the cut fit's seconds (paid by the first worker, used here).
    assert stored["fit_time_s"] > 0
    assert result.core_s is not None and result.core_s > stored["fit_time_s"]
    # Exact for XGBoost without subsampling: the uninterrupted run's score, every fold.
    ctx, (trial,), _ = local_study(
        "xgboost",
        FIXED,
        {"n_estimators": [ROUNDS]},
        "breast_cancer",
        "roc_auc",
        folds=FOLDS,
        seed=0,
    )
    reference = run_trial(ctx, trial)
    assert (result.score, result.fold_scores) == (reference.score, reference.fold_scores)

    # Lost 0, duplicated 0: one result published, nothing dead-lettered or left queued.
    published = take(channel, results, 1)
    assert isinstance(decode_event(published[0][2]), TrialResult)
    assert channel.basic_get(results, auto_ack=True)[0] is None
    assert queue_depth(channel, topology.dead_letter_queue) == 0
    assert queue_depth(channel, topology.trials_queue) == 0
    assert (status.preempted, status.preemptions) == (1, 1)  # a preemption, not a failure

    # `tunefleet show` marks it.
    env = {
        "RABBITMQ_URL": str(settings.rabbitmq_url),
        "MONGODB_URL": str(settings.mongodb_url),
        "TUNEFLEET_NAMESPACE": settings.tunefleet_namespace,
        "MONGODB_DATABASE": settings.mongodb_database,
    }
    shown = CliRunner().invoke(app, ["show", result.trial_id], env=env)
    assert shown.exit_code == 0, shown.output
    assert "resumed at round" in shown.output and str(cut) in shown.output
    connection.close()
