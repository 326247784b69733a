"""What a preemption costs a long trial, with fold checkpoints and without:
`uv run python -m bench preemption [--reps N] [--quick]` (a storm of them on a study:
`bench.storm`).

One XGBoost trial of `FOLDS` folds (breast_cancer, many rounds, so that a fold takes about a
second and a half) runs on a worker that is stopped (as SIGTERM stops it) once `j` folds are
finished and checkpointed; it hands the trial back, and a second worker, in a fresh fold cache,
finishes it. Measured from the second worker's start to the collector's write of the result:
with the checkpoints (it trains the folds from j on), and with a second worker that has no
store to read them from (it trains every fold: what a preemption cost before). An
uninterrupted run gives the baseline and the score every run must reproduce, bit for bit.

The services run in this process, on threads (the worker's training thread releases the GIL
in XGBoost), against the dev services' RabbitMQ and FerretDB, one namespace per run.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

from tunefleet.client import Client
from tunefleet_collector.collector import Collector
from tunefleet_publisher.publisher import Publisher
from tunefleet_runtime.settings import (
    CollectorSettings,
    PublisherSettings,
    WorkerSettings,
)
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_worker import foldcache
from tunefleet_worker.training import warm_up
from tunefleet_worker.worker import Worker

from bench.common import Spread, _delete_queues, isolated, services_up, table, write_section

FOLDS = 5


def _spec(rounds: int) -> dict[str, Any]:
    return {
        "name": "preempted",
        "dataset": "breast_cancer",
        "metric": "roc_auc",
        "cv": {"folds": FOLDS, "seed": 0},
        "search": {
            "xgboost": {
                "fixed": {"max_depth": 8, "learning_rate": 0.02, "subsample": 0.8},
                "grid": {"n_estimators": [rounds]},
            }
        },
    }


class _Thread:
    """A service on a thread of this process."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.thread = threading.Thread(target=service.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.service.stop()
        self.thread.join(timeout=120)


@dataclass(frozen=True)
class Outcome:
    resume_s: float  # second worker's start to the result's write (the first's, unstopped)
    cpu_s: float  # this process's CPU seconds over the same span (training, mostly)
    fit_s: float  # the result's fit_time_s
    resumed_folds: int
    score: float


def _wait(probe: Any, what: str, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)
    return found


def _one(services: Any, rounds: int, stop_after: int | None, keep: bool) -> Outcome:
    """One trial; `stop_after`: folds checkpointed before its first worker is stopped (None:
    never stopped); `keep`: whether the second worker finds the checkpoints."""
    settings = isolated(services)

    def worker(name: str, store: bool = True) -> Worker:
        fields = settings.model_dump()
        if not store:  # no store to read checkpoints from: every fold is trained
            fields["mongodb_url"] = None
        return Worker(
            WorkerSettings(
                **fields,
                tunefleet_worker_name=name,
                tunefleet_grace_period_s=0.1,
                tunefleet_checkpoint_min_s=0.0,
            )
        )

    running = [
        _Thread(Collector(CollectorSettings(**settings.model_dump()))),
        _Thread(Publisher(PublisherSettings(**settings.model_dump()))),
    ]
    db = connect_store(settings)
    try:
        foldcache.clear()
        study = str(Client(settings).submit(_spec(rounds)))
        first = _Thread(worker("first"))
        started, cpu = time.time(), time.process_time()
        if stop_after is not None:
            _wait(
                lambda: db.folds.count_documents({"study_id": study}) >= stop_after,
                f"{stop_after} checkpoints",
            )
            first.stop()
            foldcache.clear()  # the next worker is another process
            started, cpu = time.time(), time.process_time()
            running.append(_Thread(worker("second", store=keep)))
        else:
            running.append(first)
        doc = _wait(lambda: db.trials.find_one({"study_id": study}), "the result")
        elapsed, cpu = float(doc["stored_at"]) - started, time.process_time() - cpu
        if doc["status"] != "done":
            raise RuntimeError(f"the trial failed: {doc.get('error')}")
        return Outcome(
            resume_s=elapsed,
            cpu_s=cpu,
            fit_s=float(doc["fit_time_s"]),
            resumed_folds=int(doc.get("resumed_folds") or 0),
            score=float(doc["score"]),
        )
    finally:
        for service in running:
            service.stop()
        db.client.drop_database(settings.mongodb_database)
        _delete_queues(settings)


def run(reps: int, quick: bool) -> None:
    rounds = 1500 if quick else 10_000
    cases = [1, 3] if quick else [1, 2, 4]
    warm_up()
    rows = []
    with services_up() as services:
        baseline = [_one(services, rounds, None, True) for _ in range(reps)]
        score = baseline[0].score
        fold_s = statistics.median(b.fit_s for b in baseline) / FOLDS
        print(
            f"uninterrupted: wall {[round(b.resume_s, 2) for b in baseline]} s, "
            f"CPU {[round(b.cpu_s, 2) for b in baseline]} s",
            flush=True,
        )
        for j in cases:
            kept = [_one(services, rounds, j, True) for _ in range(reps)]
            lost = [_one(services, rounds, j, False) for _ in range(reps)]
            for outcome in (*kept, *lost, *baseline):
                if outcome.score != score:
                    raise RuntimeError(f"score {outcome.score!r} is not {score!r}")
            # The fold in training when the stop came may finish within the grace period.
            if min(k.resumed_folds for k in kept) < j or {x.resumed_folds for x in lost} != {0}:
                raise RuntimeError(f"resumed folds: {kept}, {lost}")
            with_, without = (
                Spread.of([k.resume_s for k in kept]),
                Spread.of([x.resume_s for x in lost]),
            )
            cpu_with = Spread.of([k.cpu_s for k in kept])
            cpu_without = Spread.of([x.cpu_s for x in lost])
            print(
                f"stopped after {j}: wall {with_.fmt()} s with, {without.fmt()} s without; "
                f"CPU {cpu_with.fmt()} s with, {cpu_without.fmt()} s without",
                flush=True,
            )
            rows.append(
                [
                    f"{j} of {FOLDS}",
                    "/".join(str(k.resumed_folds) for k in kept),
                    cpu_without.fmt(1, " s"),
                    cpu_with.fmt(1, " s"),
                    f"{cpu_with.median / cpu_without.median:.2f}",
                    without.fmt(1, " s"),
                    with_.fmt(1, " s"),
                    f"{with_.median / without.median:.2f}",
                ]
            )
    body = (
        f"One XGBoost trial (breast_cancer, {FOLDS} folds, {rounds:,} rounds, depth 8; one "
        f"fold trains in about {fold_s:.1f} s, the whole trial in "
        f"{Spread.of([b.resume_s for b in baseline]).fmt(1, ' s')} from the worker's start to "
        f"the stored result, {Spread.of([b.cpu_s for b in baseline]).fmt(1, ' s')} of CPU). "
        "Its worker is stopped after j folds were checkpointed and hands it back; a second "
        "worker (fresh fold cache) finishes it. Seconds from the second "
        "worker's start to the stored result (wall), and this process's CPU seconds over "
        "the same span (the second worker's training, mostly: the wall time follows the "
        "machine's load), median (min..max) of "
        f"{reps} runs each, without the checkpoints (the second worker has no store to read "
        "them from: what a preemption cost before) and with them; folds resumed per run (the "
        "fold in training at the stop may finish within the 0.1 s grace period). Every "
        "run's score is the uninterrupted run's, bit for bit.\n\n"
        + table(
            [
                "stopped after",
                "folds resumed",
                "CPU, without checkpoints",
                "CPU, with",
                "ratio",
                "wall, without",
                "wall, with",
                "ratio",
            ],
            rows,
        )
    )
    write_section("preemption", "Preemption: fold checkpoints", body)
