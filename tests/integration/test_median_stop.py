"""The median rule across trials through the real pipeline (RabbitMQ, FerretDB/MongoDB): the
worker reads the finished trials' curves from the store when a trial starts, and a trial worse
than their median stops early, stored as done with its score at its best round so far."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tunefleet.client import Client
from tunefleet_collector.collector import Collector
from tunefleet_contract.messages import TrialMessage, TrialSpec
from tunefleet_publisher.publisher import Publisher
from tunefleet_runtime.settings import (
    ClientSettings,
    CollectorSettings,
    PublisherSettings,
    WorkerSettings,
)
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker.datasets import load_dataset
from tunefleet_worker.earlystop import run_stopped
from tunefleet_worker.training import TrialContext
from tunefleet_worker.worker import Worker

from tests.support.broker import Running
from tests.support.waiting import wait_until

MEDIAN = {"warmup": 3, "after_trials": 1, "rounds": 2}
GOOD = {"max_depth": 3}
BAD = {"max_depth": 1, "learning_rate": 0.01, "colsample_bytree": 0.1}
SPEC: dict[str, Any] = {
    "name": "median",
    "dataset": "breast_cancer",
    "metric": "roc_auc",
    "cv": {"folds": 3, "seed": 3},
    "search": {
        "xgboost": {
            "early_stopping": {"rounds": 10, "max_rounds": 100, "median": MEDIAN},
            # In this order: the good trial first, then the bad one, compared with it.
            "grid": [{k: [v] for k, v in GOOD.items()}, {k: [v] for k, v in BAD.items()}],
        }
    },
}


class OneAtATime(Worker):
    """A real worker that starts a trial only once the results of the trials it ran before
    are in the store: which finished curves a trial sees is then fixed, not a race between
    the collector's write and the next delivery."""

    def __init__(self, settings: WorkerSettings, client: Client) -> None:
        super().__init__(settings)
        self.client = client
        self.started: list[dict[str, Any]] = []

    def _run(self, job: Any) -> None:
        message = job.delivery.message
        if isinstance(message, TrialMessage):
            before = len(self.started)
            wait_until(
                lambda: len(self.client.trials(message.study_id)) >= before,
                what=f"{before} stored results",
                timeout=60,
            )
            self.started.extend(dict(t.params) for t in message.trials)
        super()._run(job)


def test_a_trial_worse_than_the_finished_trials_median_stops_early(
    settings: ClientSettings, run_service: Callable[[Any], Running]
) -> None:
    client = Client(settings)
    run_service(Publisher(PublisherSettings(**settings.model_dump())))
    run_service(Collector(CollectorSettings(**settings.model_dump())))
    worker = OneAtATime(
        WorkerSettings(**settings.model_dump(), tunefleet_worker_name="median-worker"), client
    )
    run_service(worker)
    study_id = str(client.submit(SPEC))
    wait_until(
        lambda: len([r for r in client.trials(study_id) if r.status == "done"]) == 2,
        what="two done trials",
        timeout=300,
    )
    assert worker.started == [GOOD, BAD]
    by_params = {tuple(sorted(r.params.items())): r for r in client.trials(study_id)}
    good = by_params[tuple(sorted(GOOD.items()))]
    bad = by_params[tuple(sorted(BAD.items()))]
    assert good.early_stopping is not None and bad.early_stopping is not None
    # The first had no finished trial to compare with; it stopped by its own patience.
    assert (good.early_stopping["stopped_by"], good.early_stopping["median_trials"]) == (None, 0)
    assert good.early_stopping["stop_round"] - good.early_stopping["best_round"] == 10
    # The second was compared with the first's curve, read from the store, and stopped after
    # the warm-up and two rounds worse: done, at its best round so far.
    stop = bad.early_stopping
    assert (bad.status, stop["stopped_by"], stop["median_trials"]) == ("done", "median", 1)
    assert stop["stop_round"] == stop["rounds_trained"] == 5
    assert stop["best_round"] <= 5 and bad.score is not None and bad.score < good.score  # type: ignore[operator]
    # Scored as the worker scores that trial given that finished curve: comparable with the rest.
    spec = parse_spec(SPEC)
    es = spec.search["xgboost"].early_stopping
    assert es is not None
    ctx = TrialContext(study_id, load_dataset(spec.dataset), "roc_auc", 3, 3, "local", 1, 1)
    trial = TrialSpec(trial_id=bad.trial_id, library="xgboost", params=dict(bad.params))
    local = run_stopped(ctx, trial, es, finished=[dict(good.early_stopping)])
    assert local.score == bad.score
    assert local.early_stopping is not None
    assert local.early_stopping.model_dump() == stop
