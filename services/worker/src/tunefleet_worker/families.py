"""One fit per fold for a family of trials that differ only in their number of rounds.

A boosted model of N rounds contains the model of every n < N: its first n trees are the trees
a model trained for n rounds has, bit for bit, where `tunefleet_contract.families.rounds_of` says
so (the exceptions, such as DART, are never grouped). So each fold is fitted once, at the
family's largest value, and every member is scored by the scikit-learn scorer on that fitted
estimator with its predictions cut after the member's rounds (each library's
`ModelLibrary.cut`: XGBoost's `iteration_range`, LightGBM's `num_iteration`, CatBoost's
`ntree_end`). Each member keeps its own trial id and result, and its score is the one training
it alone gives (tests/unit/test_families.py).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Sequence
from typing import Any

from tunefleet_contract.families import rounds_of
from tunefleet_contract.messages import TrialResult, TrialSpec

from tunefleet_worker.libraries import model_library
from tunefleet_worker.training import (
    FoldDone,
    RoundStoppedError,
    TrialContext,
    done_result,
    failed_result,
    fit_fold_rounds,
    fold_totals,
    library_folds,
    run_folds,
    run_trial,
    split_threads,
)

__all__ = ["run_family", "truncated"]

# Whatever a scikit-learn scorer may call. A method without the library's keyword raises when
# called (a failed trial), never predicts with the whole model.
_RESPONSE_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


@contextlib.contextmanager
def truncated(estimator: Any, library: str, rounds: int) -> Iterator[Any]:
    """The fitted estimator itself, predicting with its first `rounds` rounds only.

    The estimator is not wrapped: the scorer sees the very object (classes_, tags, type) it
    would see after training `rounds` rounds, with instance attributes shadowing its predict
    methods until the block ends.
    """
    cut = model_library(library).cut(rounds)
    patched = [name for name in _RESPONSE_METHODS if hasattr(estimator, name)]
    for name in patched:
        method = getattr(estimator, name)
        # Named as the method: scikit-learn reads `__name__` to decide how to use the output.
        setattr(estimator, name, functools.update_wrapper(functools.partial(method, **cut), method))
    try:
        yield estimator
    finally:
        for name in patched:
            delattr(estimator, name)


def run_family(ctx: TrialContext, members: Sequence[TrialSpec]) -> list[TrialResult]:
    """Score every member of one family (see `tunefleet_contract.families`) from one fit per
    fold; a library error fails every member with it. A family of one is a plain trial."""
    if len(members) == 1:
        return [run_trial(ctx, members[0])]
    library = members[0].library
    rounds = []
    for member in members:
        found = rounds_of(library, member.params)
        if found is None:
            raise ValueError(f"trial {member.trial_id} cannot share a fit: no rounds to cut")
        rounds.append(found[1])
    top = max(rounds)
    largest = members[rounds.index(top)]
    params, threads = split_threads(ctx, largest)
    shared = len(members)
    spent = [0.0]  # fit time of the folds fitted here, for a failure's results
    continued: list[int] = []  # rounds that folds continued from (round checkpoints)

    def compute(i: int) -> list[FoldDone]:
        data, folds = library_folds(ctx, library)
        fold = folds.fold(i)
        t0 = time.perf_counter()
        estimator, resumed_at = fit_fold_rounds(
            ctx, largest.trial_id, library, params, threads, data, folds, fold
        )
        if resumed_at is not None:
            continued.append(resumed_at)
        fit = time.perf_counter() - t0
        spent[0] += fit
        done = []
        for n in rounds:
            t1 = time.perf_counter()
            if n == top:  # the whole model: exactly what training it alone scores
                score = ctx.scorer(estimator, fold.X_test, fold.y_test)
            else:
                with truncated(estimator, library, n) as view:
                    score = ctx.scorer(view, fold.X_test, fold.y_test)
            # The fit is shared: each member carries an equal part of it.
            done.append(FoldDone(float(score), fit / shared, time.perf_counter() - t1))
        return done

    try:
        per_member, taken = run_folds(ctx, [m.trial_id for m in members], compute)
    except RoundStoppedError:
        raise
    except Exception as exc:  # a library error is every member's result, not the worker's crash
        return [
            failed_result(ctx, m, exc, spent[0] / shared, fit_shared_by=shared) for m in members
        ]
    # Each member says by how many its fits are shared, so that summing fit_time_s over a
    # study still gives the training time spent.
    results = []
    for member, done in zip(members, per_member, strict=True):
        scores, fit_time, score_time = fold_totals(done)
        results.append(
            done_result(
                ctx,
                member,
                scores,
                fit_time,
                score_time,
                fit_shared_by=shared,
                resumed_folds=taken or None,
                resumed_at_round=min(continued, default=None),
            )
        )
    return results
