"""Early stopping that understands cross-validation: the rounds of a trial chosen by the mean
validation curve over its folds, as `xgb.cv` and `lgb.cv` choose them.

The rule (docs/spec.md, "Early stopping"): after each round r (1-based) the mean over the folds
of the library's evaluation metric on each fold's validation part is taken; the best round is
the first round of the best mean (strictly better only, as both libraries' early stopping
compare); training stops after round r once r - best >= `rounds`, or at `max_rounds`.

XGBoost and LightGBM advance every fold together: each fold trains in a thread of its own
through the library's scikit-learn `fit` (so with the fold cache, and the very model
GridSearchCV's fit of that fold builds), and a callback after every round waits at a barrier
until all folds have reported, then all go on or all stop. A lock lets one fold train at a
time, so a trial uses the worker's threads as a plain trial does. Threads rather than one loop
over the folds' boosters (what `xgb.cv` does): XGBoost draws its row and column samples from a
per-thread generator, so interleaving the folds' rounds on one thread gives other samples than
training each fold alone (measured: predictions 0.30 to 0.40 apart with `subsample: 0.7`),
and `lgb.cv` bins the features once on all rows, validation folds included (predictions differ
by up to 0.24 on breast_cancer). CatBoost cannot hold a fold back from a callback: each fold
trains to `max_rounds` and the same rule is applied to the folds' evaluation histories.

The score is the study's scorer on each fold's model cut after the best round (the families'
cut, `tunefleet_worker.families.truncated`), which is the score of training that many rounds.

With the median rule (`tunefleet_worker.median`) the curve may also stop where the trial's best
mean so far stays worse than the finished trials' median curve; it is scored the same way, at
its best round so far, and its summary says `stopped_by: median`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from tunefleet_contract.libraries import catalogues
from tunefleet_contract.messages import CURVE_POINTS, EarlyStopped, TrialResult, TrialSpec
from tunefleet_contract.rules import EvalMetric
from tunefleet_contract.spec import EarlyStoppingSpec

from tunefleet_worker.datasets import Dataset
from tunefleet_worker.families import truncated
from tunefleet_worker.foldcache import Fold
from tunefleet_worker.libraries import AfterRound, model_library
from tunefleet_worker.median import MedianRule, median_curve
from tunefleet_worker.training import (
    TrialContext,
    done_result,
    failed_result,
    library_folds,
    make_estimator,
    split_threads,
)

__all__ = ["Curve", "eval_kind", "run_stopped", "summary"]


@dataclass
class Curve:
    """The mean validation curve over the folds as it grows, and the stopping rule on it."""

    patience: int
    greater_is_better: bool
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    best: int = 0  # the best round so far, 1-based (0: none yet)
    stop: int = 0  # the round after which the rule stopped (0: not yet)
    median: MedianRule | None = None  # the median rule across trials, where it is on
    stopped_by: Literal["median"] | None = None

    def add(self, values: Sequence[float]) -> int | None:
        """Record one round's values (one per fold, in fold order); the best round if
        training stops after this one (or stopped before: rounds trained past the stop, as
        CatBoost's are, are recorded and change nothing), else None."""
        # np.mean over the folds in fold order: the sums xgb.cv and lgb.cv take.
        mean, std = float(np.mean(values)), float(np.std(values))
        self.means.append(mean)
        self.stds.append(std)
        rounds = len(self.means)
        if self.stop:
            return self.best
        if self.best == 0 or self._better(mean, self.means[self.best - 1]):
            self.best = rounds
        if rounds - self.best >= self.patience:
            self.stop = rounds
            return self.best
        if self.median and self.best and self.median.stops(rounds, self.means[self.best - 1]):
            self.stop, self.stopped_by = rounds, "median"
            return self.best
        return None

    def _better(self, new: float, old: float) -> bool:
        # NaN never improves (both comparisons are false), as in the libraries.
        return new > old if self.greater_is_better else new < old


def eval_kind(dataset: Dataset) -> str:
    """binary, multiclass or regression: which of a library's metrics apply."""
    if dataset.task == "regression":
        return "regression"
    return "binary" if len(dataset.classes) <= 2 else "multiclass"


def summary(
    curve: Curve, metric: EvalMetric, stop: EarlyStoppingSpec, points: int = CURVE_POINTS
) -> EarlyStopped:
    """The curve as a result stores it: every round up to `points` of them; beyond, every
    `ceil(n / points)`-th round from the first, plus the best, the stopping and the last
    round."""
    n = len(curve.means)
    step = max(1, math.ceil(n / points))
    kept = sorted({*range(1, n + 1, step), curve.best, curve.stop or n, n})

    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return EarlyStopped(
        metric=metric.name,
        greater_is_better=metric.greater_is_better,
        rounds=stop.rounds,
        max_rounds=stop.max_rounds,
        best_round=curve.best,
        stop_round=curve.stop or n,
        rounds_trained=n,
        best_value=finite(curve.means[curve.best - 1]),
        stopped_by=curve.stopped_by,
        median_trials=curve.median.trials if curve.median else None,
        curve_rounds=kept,
        curve_mean=[finite(curve.means[r - 1]) for r in kept],
        curve_std=[finite(curve.stds[r - 1]) for r in kept],
    )


def _lockstep(
    n_folds: int, curve: Curve, fit: Callable[[int, AfterRound], Any], max_rounds: int
) -> list[Any]:
    """`fit(i, after_round)` for every fold, each in a thread, advancing round by round
    together; one fold trains at a time. The first fold's error is raised."""
    values = [math.nan] * n_folds
    reported = [0] * n_folds
    decision: list[int | None] = [None]

    def decide() -> None:  # the barrier's action: once per round, every fold reported
        decision[0] = curve.add(values)

    barrier = threading.Barrier(n_folds, action=decide)
    turn = threading.Lock()
    models: list[Any] = [None] * n_folds
    errors: list[BaseException | None] = [None] * n_folds

    def after_round(i: int, value: float) -> int | None:
        values[i] = value
        reported[i] += 1
        turn.release()
        try:
            barrier.wait()
        finally:
            turn.acquire()
        return decision[0]

    def run(i: int) -> None:
        with turn:
            try:
                models[i] = fit(i, lambda value: after_round(i, value))
                if decision[0] is None and reported[i] < max_rounds:
                    # A library that ended a fold on its own would leave the others waiting.
                    raise RuntimeError(
                        f"fold {i} stopped training by itself after {reported[i]} rounds"
                    )
            except BaseException as exc:  # handed to the trial's thread, raised there
                errors[i] = exc
                barrier.abort()  # the other folds would wait for this one for ever

    threads = [
        threading.Thread(target=run, args=(i,), name=f"fold-{i}", daemon=True)
        for i in range(n_folds)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The fold that failed, not the folds that then found the barrier broken.
    found = [e for e in errors if e is not None]
    if found:
        raise next((e for e in found if not isinstance(e, threading.BrokenBarrierError)), found[0])
    return models


def _histories(
    n_folds: int, curve: Curve, fit: Callable[[int, AfterRound], Any], max_rounds: int
) -> list[Any]:
    """Every fold trained to the limit, one after another; then the rule on the mean of their
    evaluation histories: it stops where lock-step training would have stopped, and the
    curve keeps the rounds trained past that."""
    histories: list[list[float]] = []
    models = []
    del max_rounds  # every fold trains to the limit the estimator was given
    for i in range(n_folds):
        history: list[float] = []
        models.append(fit(i, lambda value, h=history: h.append(value)))  # type: ignore[misc]
        histories.append(history)
    lengths = {len(h) for h in histories}
    if len(lengths) != 1:
        raise ValueError(f"the folds' evaluation histories differ in length: {sorted(lengths)}")
    for values in zip(*histories, strict=True):
        curve.add(values)
    return models


def run_stopped(
    ctx: TrialContext,
    trial: TrialSpec,
    stop: EarlyStoppingSpec,
    finished: Sequence[Mapping[str, Any]] | None = None,
) -> TrialResult:
    """Train one trial with early stopping and score it at its best round; a library error
    is a `failed` result, never a raise. `finished`: the stored summaries of the library's
    finished trials, for the median rule (None: the rule is off, or they could not be read)."""
    params, threads = split_threads(ctx, trial)
    library = model_library(trial.library)
    catalogue = catalogues()[trial.library]
    fit_time = score_time = 0.0
    try:
        data, folds = library_folds(ctx, trial.library)
        metric = catalogue.eval_metric(ctx.metric, eval_kind(data), stop.metric)
        params[catalogue.rounds[0]] = stop.max_rounds
        curve = Curve(stop.rounds, metric.greater_is_better)
        if stop.median is not None and finished is not None and library.lockstep:
            same = [f for f in finished if f.get("metric") == metric.name]
            medians = median_curve(same, metric.name, stop.median.after_trials, stop.max_rounds)
            curve.median = MedianRule(medians, stop.median, metric.greater_is_better, len(same))
        fold_list: list[Fold] = list(folds)

        def fit(i: int, after_round: AfterRound) -> Any:
            estimator = make_estimator(trial.library, data.task, params, threads, data.categorical)
            library.fit_observed(estimator, fold_list[i], folds, metric.name, after_round)
            return estimator

        started = time.perf_counter()
        run = _lockstep if library.lockstep else _histories
        estimators = run(len(fold_list), curve, fit, stop.max_rounds)
        fit_time = time.perf_counter() - started
        if curve.best == 0:
            raise ValueError(f"no {metric.name!r} value was reported for any round")
        scores = []
        for fold, estimator in zip(fold_list, estimators, strict=True):
            with truncated(estimator, trial.library, curve.best) as view:
                scores.append(float(ctx.scorer(view, fold.X_test, fold.y_test)))
        score_time = time.perf_counter() - started - fit_time
    except Exception as exc:  # any library error is the trial's result, not the worker's crash
        return failed_result(ctx, trial, exc, fit_time)
    return done_result(
        ctx, trial, scores, fit_time, score_time, early_stopping=summary(curve, metric, stop)
    )
