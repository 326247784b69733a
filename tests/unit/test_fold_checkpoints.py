"""Fold checkpoints: a trial stopped after some of its folds and taken up again (by another
worker, a fresh process: no fold cache) trains only the folds it has no record of, and its
result is the uninterrupted run's, bit for bit, for each library, alone and in a family.

The records go the whole way a worker's do: the event encoded and decoded, stored by the
store's rules (the in-memory backend; the conformance suite holds MongoDB to the same), read
back as the next worker reads them. Subsampling is on (rows and columns), so a fold that did
not replay its own random draws would show.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from tunefleet_contract.families import families
from tunefleet_contract.messages import FoldCheckpoint, TrialResult, TrialSpec, decode_event
from tunefleet_runtime.store.memory import MemoryStore
from tunefleet_worker import foldcache
from tunefleet_worker.checkpoints import fold_checkpoint, resumed_folds
from tunefleet_worker.families import run_family
from tunefleet_worker.training import FoldDone, TrialContext, run_trial

from tests.support.reference import local_study

FOLDS = 4
ROUNDS = [4, 9, 6]

SUBSAMPLED: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
    "xgboost": (
        {"subsample": 0.7, "colsample_bytree": 0.6, "max_depth": 3, "learning_rate": 0.3},
        {"n_estimators": ROUNDS},
    ),
    "lightgbm": (
        {
            "subsample": 0.7,
            "subsample_freq": 1,
            "colsample_bytree": 0.6,
            "num_leaves": 7,
            "min_child_samples": 5,
            "learning_rate": 0.3,
        },
        {"n_estimators": ROUNDS},
    ),
    "catboost": (
        {"rsm": 0.6, "subsample": 0.7, "bootstrap_type": "Bernoulli", "depth": 3},
        {"iterations": ROUNDS, "learning_rate": [0.3]},
    ),
}

Run = Callable[[TrialContext, Sequence[TrialSpec]], list[TrialResult]]


def alone(ctx: TrialContext, trials: Sequence[TrialSpec]) -> list[TrialResult]:
    return [run_trial(ctx, trial) for trial in trials]


def in_family(ctx: TrialContext, trials: Sequence[TrialSpec]) -> list[TrialResult]:
    (family,) = families(trials)
    assert len(family) == len(ROUNDS)  # one fit per fold for all of them
    return run_family(ctx, family)


def study(library: str) -> tuple[TrialContext, list[TrialSpec]]:
    fixed, grid = SUBSAMPLED[library]
    ctx, trials, _ = local_study(
        library, fixed, grid, "breast_cancer", "roc_auc", study_id="s", folds=FOLDS
    )
    return ctx, trials


def exact(result: TrialResult) -> tuple[Any, ...]:
    """What must be equal bit for bit (floats compared by their bytes: 0.0 is not -0.0)."""

    def bits(value: float | None) -> bytes | None:
        return None if value is None else np.float64(value).tobytes()

    return (
        result.trial_id,
        result.status,
        bits(result.score),
        bits(result.score_std),
        [bits(s) for s in result.fold_scores],
    )


def stopped_and_resumed(
    library: str, run: Run, after: int
) -> tuple[list[TrialResult], list[TrialResult], list[int]]:
    """The uninterrupted run; the run of a worker that finds the checkpoints of the first
    `after` folds only (it was stopped then); the folds that second run trained and
    announced."""
    ctx, trials = study(library)
    checkpoints: list[FoldCheckpoint] = []

    def record(fold: int, done: Sequence[tuple[str, FoldDone]]) -> None:
        checkpoints.append(fold_checkpoint("s", 0, FOLDS, fold, done, "w1"))

    full = run(dataclasses.replace(ctx, on_fold=record), trials)
    # Every fold but the last was announced, once per fit (the result follows the last one
    # at once).
    fits = 1 if run is in_family else len(trials)
    assert sorted(c.fold for c in checkpoints) == sorted(list(range(FOLDS - 1)) * fits)

    store = MemoryStore()
    store.write_events(
        [decode_event(c.encode()) for c in checkpoints if c.fold < after]  # over the wire
    )
    foldcache.clear()  # another worker: nothing prepared
    stored = store.fold_checkpoints("s", 0, [t.trial_id for t in trials], FOLDS)
    trained: list[int] = []
    second = dataclasses.replace(
        ctx,
        resumed=resumed_folds(stored),
        on_fold=lambda fold, _done: trained.append(fold),
        attempts=2,
    )
    return full, run(second, trials), trained


@pytest.mark.parametrize("run", [alone, in_family], ids=["alone", "family"])
@pytest.mark.parametrize("library", sorted(SUBSAMPLED))
def test_a_resumed_trial_is_bit_identical_to_an_uninterrupted_one(library: str, run: Run) -> None:
    full, resumed, trained = stopped_and_resumed(library, run, after=2)
    assert [r.status for r in full] == ["done"] * len(ROUNDS)
    assert [exact(r) for r in resumed] == [exact(r) for r in full]
    # Folds 0 and 1 were taken, not trained: only fold 2 was announced again, once per fit
    # (fold 3 is the last, never announced).
    assert trained == [2] * (1 if run is in_family else len(ROUNDS))
    assert [r.resumed_folds for r in resumed] == [2] * len(ROUNDS)
    assert all(r.resumed_folds is None for r in full)
    # The taken folds' fit times count: fit_time_s is still the training the result cost.
    assert all(r.fit_time_s is not None and r.fit_time_s > 0 for r in resumed)


def test_a_family_resumes_only_folds_every_member_has() -> None:
    ctx, trials = study("xgboost")
    checkpoints: list[FoldCheckpoint] = []
    full = in_family(
        dataclasses.replace(
            ctx,
            on_fold=lambda fold, done: checkpoints.append(
                fold_checkpoint("s", 0, FOLDS, fold, done, "w1")
            ),
        ),
        trials,
    )
    # Fold 0 of every member, fold 1 of one member only (a family of another chunk's cut).
    first = checkpoints[0]
    partial = first.model_copy(update={"fold": 1, "trials": checkpoints[1].trials[:1]})
    store = MemoryStore()
    store.write_events([first, partial])
    trained: list[int] = []
    stored = store.fold_checkpoints("s", 0, [t.trial_id for t in trials], FOLDS)
    resumed = in_family(
        dataclasses.replace(
            ctx, resumed=resumed_folds(stored), on_fold=lambda fold, _: trained.append(fold)
        ),
        trials,
    )
    assert trained == [1, 2]  # fold 1 is fitted again for all, since one fit serves all
    assert [exact(r) for r in resumed] == [exact(r) for r in full]
    assert {r.resumed_folds for r in resumed} == {1}


def test_a_fold_score_that_is_not_finite_resumes_to_the_same_result() -> None:
    ctx, trials = study("xgboost")
    trial = trials[0]
    nan = FoldDone(math.nan, 1.0, 0.0)
    record = fold_checkpoint("s", 0, FOLDS, 0, [(trial.trial_id, nan)], "w1")
    assert record.trials[0].score is None  # no store keeps NaN
    store = MemoryStore()
    store.write_events([decode_event(record.encode())])
    (taken,) = resumed_folds(store.fold_checkpoints("s", 0, [trial.trial_id], FOLDS)).values()
    assert math.isnan(taken[0].score)
    result = run_trial(dataclasses.replace(ctx, resumed={trial.trial_id: taken}), trial)
    # As an uninterrupted run whose fold 0 scored NaN: no score, no std, that fold None.
    assert (result.score, result.score_std, result.fold_scores[0]) == (None, None, None)
    assert all(s is not None for s in result.fold_scores[1:])


def test_the_noop_library_checkpoints_its_folds_too() -> None:
    ctx, _ = study("xgboost")
    noop = TrialSpec(trial_id="a" * 24, library="noop", params={"score": 0.5, "sleep_s": 0.4})
    slept: list[float] = []
    announced: list[int] = []
    result = run_trial(
        dataclasses.replace(
            ctx,
            sleep=slept.append,
            on_fold=lambda fold, _: announced.append(fold),
            checkpoint_min_s=0.0,
        ),
        noop,
    )
    assert result.fold_scores == [0.5] * FOLDS and slept == [0.1] * FOLDS
    assert announced == [0, 1, 2]
    done = {i: FoldDone(0.5, 0.1, 0.0) for i in range(3)}
    slept.clear()
    again = run_trial(
        dataclasses.replace(ctx, sleep=slept.append, resumed={noop.trial_id: done}), noop
    )
    assert slept == [0.1] and again.resumed_folds == 3 and again.score == 0.5


def test_a_fold_faster_than_the_minimum_is_not_announced() -> None:
    ctx, _ = study("xgboost")
    noop = TrialSpec(trial_id="b" * 24, library="noop", params={"score": 0.5})
    announced: list[int] = []
    run_trial(
        dataclasses.replace(
            ctx, on_fold=lambda fold, _: announced.append(fold), checkpoint_min_s=60.0
        ),
        noop,
    )
    assert announced == []


def test_a_given_up_delivery_trains_no_further_fold() -> None:
    ctx, (trial, *_) = study("xgboost")
    announced: list[int] = []
    given_up = dataclasses.replace(
        ctx,
        on_fold=lambda fold, _: announced.append(fold),
        abandoned=lambda: bool(announced),  # given up once fold 0 was announced
    )
    result = run_trial(given_up, trial)
    assert announced == [0]  # fold 1 was never trained
    assert result.status == "failed" and "given up" in (result.error or "")  # never published
