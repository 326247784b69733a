"""Cross-validating one trial exactly as scikit-learn's GridSearchCV would score it.

Each fold is fitted with the library's own scikit-learn estimator and scored with the
scikit-learn scorer, as GridSearchCV does. What differs is the preparation: the fold slices and
each library's binned training set come from the worker's fold cache (`foldcache`) instead of
being rebuilt for every fit. The estimators still do all the rest of their `fit` themselves;
the cache only hands them the structure they would have built from the same arrays.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tunefleet_contract.families import rounds_of
from tunefleet_contract.messages import TrialResult, TrialSpec, finite_or_none
from tunefleet_contract.params import THREAD_PARAM, Scalar
from tunefleet_contract.spec import EarlyStoppingSpec, Task

from tunefleet_worker.datasets import Dataset
from tunefleet_worker.foldcache import Fold, FoldSet, fold_set
from tunefleet_worker.libraries import model_libraries, model_library

__all__ = [
    "AbandonedError",
    "FoldDone",
    "OnFold",
    "OnRound",
    "Resumed",
    "RoundSaved",
    "RoundStoppedError",
    "RoundsResumed",
    "TrialContext",
    "cv_splits",
    "done_result",
    "failed_result",
    "fit_fold",
    "fit_fold_rounds",
    "fold_totals",
    "library_data",
    "library_folds",
    "library_version",
    "make_estimator",
    "run_folds",
    "run_trial",
    "split_threads",
    "warm_up",
]


log = logging.getLogger(__name__)


@cache
def library_version(library: str) -> str:
    # Cached: a metadata lookup costs about a millisecond, per trial that is most of a no-op.
    for dist in (model_library(library).distribution, library):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def warm_up() -> None:
    """Import scikit-learn and the three libraries now, so that no trial pays for it.

    A worker is long-lived: about 1.5 s of imports at start-up instead of in the first trial
    of every library; resident memory with all of them loaded stays near 250 MB.
    """
    import importlib

    libraries = model_libraries().values()
    modules = [module for library in libraries for module in library.modules]
    for module in ("sklearn.metrics", "sklearn.model_selection", *modules):
        with contextlib.suppress(ImportError):  # a missing library fails its trials, not the worker
            importlib.import_module(module)


def make_estimator(
    library: str,
    task: Task,
    params: Mapping[str, Scalar],
    threads: int = 1,
    categorical: Sequence[str] = (),
) -> Any:
    """The scikit-learn estimator a trial trains; the parity test builds GridSearchCV on it.

    `categorical`: the table's categorical columns (`Dataset.categorical`), which each library
    handles natively (XGBoost's `enable_categorical`, LightGBM's pandas categoricals, CatBoost's
    `cat_features`)."""
    model = model_library(library)
    kwargs: dict[str, Any] = {THREAD_PARAM[library]: threads, **params}
    return model.make_estimator(task, kwargs, categorical)


def library_data(dataset: Dataset, library: str) -> Dataset:
    """The dataset as `library` takes it: the same, or for one that refuses NaN categories
    (CatBoost) its view with missing as a level of its own."""
    if dataset.categorical and model_library(library).missing_category:
        return dataset.with_missing_category()
    return dataset


def cv_splits(
    dataset: Dataset, folds: int, seed: int
) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """GridSearchCV's folds: StratifiedKFold or KFold, shuffled with the study's seed."""
    return fold_set(dataset, folds, seed).splits


@cache
def _scorer(metric: str) -> Any:
    # get_scorer deep-copies on every call; a scorer keeps no state between calls.
    from sklearn.metrics import get_scorer

    return get_scorer(metric)


class AbandonedError(Exception):
    """The trial's delivery was given up (handed back, or its connection lost): its next
    fold is not trained. Raised between folds; a library's fit cannot be interrupted."""


@dataclass(frozen=True)
class FoldDone:
    """One trial's finished fold: the scorer's value (NaN where it was not finite) and what
    it cost (for a family, this trial's share of the fit)."""

    score: float
    fit_time_s: float
    score_time_s: float


# Per trial id, its finished folds by index: what an earlier delivery stored (fold checkpoints).
Resumed = Mapping[str, Mapping[int, FoldDone]]


class RoundStoppedError(Exception):
    """Told to stop with `checkpoint: rounds`: the fold in training was cut after a round and
    given to `TrialContext.on_round` (which stores it and hands the delivery back); nothing
    more of the delivery is computed. Never a trial's failure."""


@dataclass(frozen=True)
class RoundSaved:
    """A fold an earlier delivery cut at `round` of `rounds` (a round checkpoint), and how to
    get its booster's file."""

    round: int
    rounds: int
    load: Callable[[], Path]
    fit_time_s: float = 0.0  # the fit's seconds up to the cut, every delivery's


# Per trial id, per fold index: the round checkpoint to continue that fold from.
RoundsResumed = Mapping[str, Mapping[int, RoundSaved]]
# Told of a fold cut on a stop: (trial id, fold, rounds trained, rounds in all, the fit's
# seconds up to the cut over every delivery, estimator).
OnRound = Callable[[str, int, int, int, float, Any], None]
# Told of each fold finished here, with every trial's part of it: (fold, [(trial id, done)]).
OnFold = Callable[[int, Sequence[tuple[str, FoldDone]]], None]


@dataclass
class TrialContext:
    """What all trials of one message share: data, folds, scorer, identity of this worker."""

    study_id: str
    dataset: Dataset
    metric: str
    folds: int
    seed: int
    worker: str
    attempts: int
    threads: int
    revision: int = 0
    sleep: Callable[[float], object] = time.sleep
    # False fits every fold from scratch like GridSearchCV (benchmarks measure both).
    reuse_structures: bool = True
    # Per library: its trials' rounds are chosen by the validation curve
    # (`tunefleet_worker.earlystop`).
    early_stopping: Mapping[str, EarlyStoppingSpec] = field(default_factory=dict)
    # Fold checkpoints (`run_folds`): the folds an earlier delivery finished, taken instead of
    # trained again; and who is told of each fold finished here that took at least
    # `checkpoint_min_s` (none of the last fold: the result follows it at once).
    resumed: Resumed = field(default_factory=dict)
    on_fold: OnFold | None = None
    checkpoint_min_s: float = 0.0
    # Whether the delivery was given up: no further fold is trained (`run_folds`).
    abandoned: Callable[[], bool] = lambda: False
    # Round checkpoints (`fit_fold_rounds`, with `checkpoint: rounds`): asked after each round
    # of a fold in training, True (a stop) cuts it there and `on_round` is given it. None:
    # folds train uncut (`checkpoint: folds`). And the cut folds an earlier delivery stored.
    notice: Callable[[], bool] | None = None
    on_round: OnRound | None = None
    rounds_resumed: RoundsResumed = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scorer = _scorer(self.metric)
        self.fold_set: FoldSet = fold_set(self.dataset, self.folds, self.seed)
        self.splits = self.fold_set.splits


def _context_fields(ctx: TrialContext, trial: TrialSpec) -> dict[str, Any]:
    return {
        "revision": ctx.revision,
        "attempts": ctx.attempts,
        "metric": ctx.metric,
        "task": ctx.dataset.task,
        "library_version": library_version(trial.library),
        "worker": ctx.worker,
    }


def library_folds(ctx: TrialContext, library: str) -> tuple[Dataset, FoldSet]:
    """The data as `library` takes it (its own form of categorical columns) and its folds:
    the message's folds, or the same split of that form of the data."""
    data = library_data(ctx.dataset, library)
    folds = ctx.fold_set if data is ctx.dataset else fold_set(data, ctx.folds, ctx.seed)
    return data, folds


def fit_fold(
    ctx: TrialContext,
    library: str,
    params: Mapping[str, Scalar],
    threads: int,
    data: Dataset,
    folds: FoldSet,
    fold: Fold,
) -> Any:
    """The library's estimator for `params`, fitted on one fold's training part."""
    estimator = make_estimator(library, data.task, params, threads, data.categorical)
    if ctx.reuse_structures:
        model_library(library).fit(estimator, fold, folds)
    else:
        estimator.fit(fold.X_train, fold.y_train)
    return estimator


def fit_fold_rounds(
    ctx: TrialContext,
    trial_id: str,
    library: str,
    params: Mapping[str, Scalar],
    threads: int,
    data: Dataset,
    folds: FoldSet,
    fold: Fold,
) -> tuple[Any, int | None]:
    """`fit_fold`, with round checkpoints where the study asks for them (`ctx.notice`) and the
    trial names its rounds so that a model cut after r rounds is the first r rounds of the
    whole one (`rounds_of`, the families' condition): the fit continues from the round
    checkpoint an earlier delivery stored for this fold, and a stop cuts it after the round in
    progress (given to `ctx.on_round`, then `RoundStoppedError`). The estimator, and the round it
    continued from (None: trained from its first)."""
    model = model_library(library)
    found = rounds_of(library, params)
    if ctx.notice is None or found is None or model.model_format is None:
        return fit_fold(ctx, library, params, threads, data, folds, fold), None
    name, rounds = found
    saved = ctx.rounds_resumed.get(trial_id, {}).get(fold.index)
    init: Path | None = None
    kwargs = dict(params)
    if saved is not None and saved.rounds == rounds and saved.round < rounds:
        try:
            init = saved.load()
            kwargs.update(model.continued_params(init))
        # Any error: a checkpoint saves time, it never fails a trial.
        except Exception as exc:
            log.warning("trial %s fold %d: training from round 0: %s", trial_id, fold.index, exc)
            init = None
            kwargs = dict(params)
    if init is not None and saved is not None:
        kwargs[name] = rounds - saved.round  # the rounds left
    started = time.perf_counter()
    estimator = make_estimator(library, data.task, kwargs, threads, data.categorical)
    model.fit_stoppable(estimator, fold, folds, ctx.notice, init)
    trained = model.rounds_trained(estimator)
    if trained < rounds:
        if ctx.on_round is not None:
            before = saved.fit_time_s if init is not None and saved is not None else 0.0
            fit_s = before + time.perf_counter() - started
            ctx.on_round(trial_id, fold.index, trained, rounds, fit_s, estimator)
        raise RoundStoppedError(
            f"fold {fold.index} cut after round {trained} of {rounds}: stopping"
        )
    return estimator, (saved.round if init is not None and saved is not None else None)


def run_folds(
    ctx: TrialContext, trial_ids: Sequence[str], compute: Callable[[int], list[FoldDone]]
) -> tuple[list[list[FoldDone]], int]:
    """Every fold of these trials, in order: a fold every one of them has in `ctx.resumed`
    is taken from there, any other is computed (`compute(i)`: one `FoldDone` per trial, in
    their order) and announced to `ctx.on_fold`. Per trial its folds, and how many were
    taken. Each fold's score depends on that fold alone (its own split, its own fit), so the
    folds taken are the very values training them again would give, and the result is the
    same, bit for bit, as an uninterrupted run's."""
    per_trial: list[list[FoldDone]] = [[] for _ in trial_ids]
    taken = 0
    for i in range(ctx.folds):
        stored = [ctx.resumed.get(trial_id, {}).get(i) for trial_id in trial_ids]
        if all(s is not None for s in stored):
            done = [s for s in stored if s is not None]
            taken += 1
        else:
            if ctx.abandoned():
                raise AbandonedError(f"stopped before fold {i}: the delivery was given up")
            started = time.perf_counter()
            done = compute(i)
            worth_it = time.perf_counter() - started >= ctx.checkpoint_min_s
            if ctx.on_fold is not None and i < ctx.folds - 1 and worth_it:
                ctx.on_fold(i, list(zip(trial_ids, done, strict=True)))
        for folds, fold in zip(per_trial, done, strict=True):
            folds.append(fold)
    return per_trial, taken


def fold_totals(folds: Sequence[FoldDone]) -> tuple[list[float], float, float]:
    """Scores, fit time and score time over a trial's folds."""
    return (
        [f.score for f in folds],
        sum(f.fit_time_s for f in folds),
        sum(f.score_time_s for f in folds),
    )


def split_threads(ctx: TrialContext, trial: TrialSpec) -> tuple[dict[str, Scalar], int]:
    """The trial's parameters without its thread count, and that count (the worker's default)."""
    params = dict(trial.params)
    threads = int(params.pop(THREAD_PARAM[trial.library], ctx.threads))  # type: ignore[arg-type]
    return params, threads


def failed_result(
    ctx: TrialContext, trial: TrialSpec, exc: Exception, fit_time: float, **fields: Any
) -> TrialResult:
    """A library error as the trial's result: `failed`, `training-error`, the message."""
    return TrialResult.failed(
        ctx.study_id,
        trial,
        reason="training-error",
        error=f"{type(exc).__name__}: {exc}",
        fit_time_s=fit_time,
        **_context_fields(ctx, trial),
        **fields,
    )


def done_result(
    ctx: TrialContext,
    trial: TrialSpec,
    scores: list[float],
    fit_time: float,
    score_time: float,
    **fields: Any,
) -> TrialResult:
    """A trial's scores over the folds as its result, with GridSearchCV's mean."""
    return TrialResult.of(
        ctx.study_id,
        trial,
        status="done",
        score=finite_or_none(float(np.mean(scores))),
        score_std=finite_or_none(float(np.std(scores))),
        fold_scores=[finite_or_none(s) for s in scores],
        fit_time_s=fit_time,
        score_time_s=score_time,
        **_context_fields(ctx, trial),
        **fields,
    )


def run_trial(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """Train and score one trial, fold by fold (`run_folds`); a library error becomes a
    `failed` result, never a raise."""
    params, threads = split_threads(ctx, trial)
    library = model_library(trial.library)
    spent = [0.0]  # fit time of the folds computed here, for a failure's result
    continued: list[int] = []  # rounds that folds continued from (round checkpoints)

    def compute(i: int) -> list[FoldDone]:
        t0 = time.perf_counter()
        simulated = library.simulate_fold(params, i, ctx.folds, ctx.sleep)
        if simulated is not None:
            fit = time.perf_counter() - t0
            spent[0] += fit
            return [FoldDone(simulated, fit, 0.0)]
        data, folds = library_folds(ctx, trial.library)
        fold = folds.fold(i)
        estimator, resumed_at = fit_fold_rounds(
            ctx, trial.trial_id, trial.library, params, threads, data, folds, fold
        )
        if resumed_at is not None:
            continued.append(resumed_at)
        t1 = time.perf_counter()
        spent[0] += t1 - t0
        score = float(ctx.scorer(estimator, fold.X_test, fold.y_test))
        return [FoldDone(score, t1 - t0, time.perf_counter() - t1)]

    try:
        (done,), taken = run_folds(ctx, [trial.trial_id], compute)
    except RoundStoppedError:
        raise
    except Exception as exc:  # any library error is the trial's result, not the worker's crash
        return failed_result(ctx, trial, exc, spent[0])
    scores, fit_time, score_time = fold_totals(done)
    return done_result(
        ctx,
        trial,
        scores,
        fit_time,
        score_time,
        resumed_folds=taken or None,
        resumed_at_round=min(continued, default=None),
    )
