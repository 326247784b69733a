"""Round checkpoints (`checkpoint: rounds`, issue 21): what the next worker spends after a stop
in the middle of a fold, and where continuing a cut fold is exact:
`uv run python -m bench round-checkpoints [--reps N] [--quick]`.

Both parts run the worker's own training code in this process (`training.run_trial`,
`training.fit_fold_rounds`), without the broker: the pipeline around it is the same for every
side and is measured by `bench preemption`.

- CPU: one XGBoost trial (breast_cancer, `FOLDS` folds, many rounds) is stopped after round j
  of fold `CUT_FOLD` (the folds before it finished and checkpointed, the fold cut and stored
  as a round checkpoint). The next worker (fresh fold cache) finishes it with no checkpoints
  (`none`: every fold again), with the fold checkpoints only (`folds`: the cut fold from its
  first round) and with both (`rounds`: the cut fold from round j): its CPU seconds
  (`time.process_time`), median (min..max) of the repetitions. Every run's score must be the
  uninterrupted one, bit for bit (XGBoost without subsampling continues exactly).
- Exactness: per library, with and without subsampling, one fold cut after round `EXACT_CUT`
  and continued, against the same fold trained uninterrupted: the largest difference of a
  predicted probability on the fold's test part, and of its fold score.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tunefleet_contract.messages import TrialSpec
from tunefleet_publisher.planner import expand
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker import foldcache
from tunefleet_worker.datasets import load_dataset
from tunefleet_worker.refit import save_native
from tunefleet_worker.training import (
    FoldDone,
    RoundSaved,
    RoundStoppedError,
    TrialContext,
    fit_fold,
    fit_fold_rounds,
    library_folds,
    run_trial,
    split_threads,
    warm_up,
)

from bench.common import Spread, table, write_section

FOLDS = 5
CUT_FOLD = 2  # folds 0 and 1 are finished (and checkpointed) when the stop comes
DATASET, METRIC = "breast_cancer", "roc_auc"
XGB: dict[str, Any] = {"max_depth": 6, "learning_rate": 0.02, "n_jobs": 1}

EXACT_ROUNDS, EXACT_CUT = 200, 80
EXACTNESS: list[tuple[str, str, dict[str, Any]]] = [
    ("xgboost", "no subsampling", {"max_depth": 4, "learning_rate": 0.1}),
    ("xgboost", "subsample 0.7", {"max_depth": 4, "learning_rate": 0.1, "subsample": 0.7}),
    ("xgboost", "colsample_bytree 0.6", {"max_depth": 4, "colsample_bytree": 0.6}),
    ("lightgbm", "no bagging", {"num_leaves": 15, "learning_rate": 0.1}),
    (
        "lightgbm",
        "bagging 0.7 every round",
        {"num_leaves": 15, "subsample": 0.7, "subsample_freq": 1},
    ),
    ("lightgbm", "colsample_bytree 0.6", {"num_leaves": 15, "colsample_bytree": 0.6}),
    (
        "catboost",
        "no randomness (bootstrap No, random_strength 0)",
        {"depth": 4, "learning_rate": 0.1, "bootstrap_type": "No", "random_strength": 0},
    ),
    ("catboost", "defaults (Bayesian bootstrap)", {"depth": 4, "learning_rate": 0.1}),
    (
        "catboost",
        "rsm 0.6, Bernoulli 0.7",
        {"depth": 4, "learning_rate": 0.1, "rsm": 0.6, "bootstrap_type": "Bernoulli"},
    ),
]
ROUNDS_PARAM = {"xgboost": "n_estimators", "lightgbm": "n_estimators", "catboost": "iterations"}


def _context(library: str, params: dict[str, Any], folds: int) -> tuple[TrialContext, TrialSpec]:
    spec = parse_spec(
        {
            "dataset": DATASET,
            "metric": METRIC,
            "cv": {"folds": folds, "seed": 0},
            "checkpoint": "rounds",
            "search": {library: {"fixed": params}},
        }
    )
    (trial,) = expand(spec, "bench")
    ctx = TrialContext(
        study_id="bench",
        dataset=load_dataset(spec.dataset),
        metric=METRIC,
        folds=folds,
        seed=0,
        worker="bench",
        attempts=1,
        threads=1,
    )
    return ctx, trial


def _notice_after(rounds: int, fold: int, at: int) -> Callable[[], bool]:
    asked = [0]

    def notice() -> bool:
        asked[0] += 1
        return asked[0] >= fold * rounds + at

    return notice


def _stopped(
    ctx: TrialContext, trial: TrialSpec, rounds: int, at: int, store: Path
) -> tuple[dict[str, dict[int, FoldDone]], dict[str, dict[int, RoundSaved]]]:
    """Run the trial until the stop after round `at` of fold CUT_FOLD: its fold checkpoints,
    and its round checkpoint (the booster written to `store`)."""
    folds: dict[str, dict[int, FoldDone]] = {}
    cut: dict[str, dict[int, RoundSaved]] = {}

    def on_fold(fold: int, done: Sequence[tuple[str, FoldDone]]) -> None:
        for trial_id, d in done:
            folds.setdefault(trial_id, {})[fold] = d

    def on_round(
        trial_id: str, fold: int, trained: int, total: int, _fit_s: float, estimator: Any
    ) -> None:
        content, fmt = save_native(trial.library, estimator)
        path = store / f"{trial_id}-{fold}-{trained}.{fmt}"
        path.write_bytes(content)
        cut.setdefault(trial_id, {})[fold] = RoundSaved(trained, total, lambda: path)

    first = dataclasses.replace(
        ctx, on_fold=on_fold, on_round=on_round, notice=_notice_after(rounds, CUT_FOLD, at)
    )
    foldcache.clear()
    try:
        run_trial(first, trial)
    except RoundStoppedError:
        pass
    else:
        raise RuntimeError("the trial was not stopped")
    if set(folds.get(trial.trial_id, {})) != set(range(CUT_FOLD)):
        raise RuntimeError(f"fold checkpoints: {folds}")
    return folds, cut


def _cpu(ctx: TrialContext, trial: TrialSpec) -> tuple[float, Any]:
    foldcache.clear()  # the next worker: a fresh process, nothing prepared
    started = time.process_time()
    result = run_trial(ctx, trial)
    return time.process_time() - started, result


def _cpu_table(reps: int, quick: bool) -> str:
    rounds = 600 if quick else 3000
    cuts = [rounds // 4, rounds // 2, 3 * rounds // 4]
    ctx, trial = _context("xgboost", {**XGB, "n_estimators": rounds}, FOLDS)
    ctx = dataclasses.replace(ctx, notice=lambda: False)
    foldcache.clear()
    started = time.process_time()
    full = run_trial(ctx, trial)
    whole = time.process_time() - started
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-rounds-") as tmp:
        for j in cuts:
            runs: dict[str, list[float]] = {"none": [], "folds": [], "rounds": []}
            for _ in range(reps):
                folds, cut = _stopped(ctx, trial, rounds, j, Path(tmp))
                sides = {
                    "none": ctx,
                    "folds": dataclasses.replace(ctx, resumed=folds),
                    "rounds": dataclasses.replace(ctx, resumed=folds, rounds_resumed=cut),
                }
                for side, side_ctx in sides.items():
                    cpu, result = _cpu(dataclasses.replace(side_ctx, attempts=2), trial)
                    if result.score != full.score or result.fold_scores != full.fold_scores:
                        raise RuntimeError(f"{side}: score {result.score!r} is not {full.score!r}")
                    runs[side].append(cpu)
            none, folds_, rounds_ = (Spread.of(runs[s]) for s in ("none", "folds", "rounds"))
            print(f"cut at {j}: none {none.fmt()} folds {folds_.fmt()} rounds {rounds_.fmt()}")
            rows.append(
                [
                    f"{j:,} of {rounds:,}",
                    none.fmt(2, " s"),
                    folds_.fmt(2, " s"),
                    rounds_.fmt(2, " s"),
                    f"{folds_.median / none.median:.2f}",
                    f"{rounds_.median / none.median:.2f}",
                    f"{rounds_.median / folds_.median:.2f}",
                ]
            )
    return (
        f"One XGBoost trial ({DATASET}, {FOLDS} folds, {rounds:,} rounds, depth "
        f"{XGB['max_depth']}, 1 thread; uninterrupted: {whole:.2f} s of CPU) is stopped after "
        f"round j of fold {CUT_FOLD} (folds 0..{CUT_FOLD - 1} finished and checkpointed). CPU "
        "seconds of the next worker to finish it (fresh fold cache), median (min..max) of "
        f"{reps} runs: with no checkpoints, with fold checkpoints only (`checkpoint: folds`: "
        "the cut fold trains again from its first round), and with round checkpoints "
        "(`checkpoint: rounds`: it continues from round j). Every run's score and fold scores "
        "are the uninterrupted run's, bit for bit.\n\n"
        + table(
            [
                "stopped after round",
                "none",
                "folds",
                "rounds",
                "folds / none",
                "rounds / none",
                "rounds / folds",
            ],
            rows,
        )
    )


def _keep(
    library: str,
    store: Path,
    saved: list[RoundSaved],
    _trial_id: str,
    _fold: int,
    trained: int,
    total: int,
    _fit_s: float,
    estimator: Any,
) -> None:
    content, fmt = save_native(library, estimator)
    path = store / f"cut.{fmt}"
    path.write_bytes(content)
    saved.append(RoundSaved(trained, total, lambda: path))


def _exactness_rows() -> list[list[str]]:
    rows = []
    for library, label, params in EXACTNESS:
        full_params = {**params, ROUNDS_PARAM[library]: EXACT_ROUNDS}
        ctx, trial = _context(library, full_params, 3)
        fitted, threads = split_threads(ctx, trial)
        data, folds = library_folds(ctx, library)
        fold = folds.fold(1)
        foldcache.clear()
        whole = fit_fold(ctx, library, fitted, threads, data, folds, fold)
        saved: list[RoundSaved] = []
        with tempfile.TemporaryDirectory(prefix="bench-exact-") as tmp:
            on_round = functools.partial(_keep, library, Path(tmp), saved)
            cut = dataclasses.replace(
                ctx, on_round=on_round, notice=_notice_after(EXACT_ROUNDS, 0, EXACT_CUT)
            )
            with contextlib.suppress(RoundStoppedError):
                fit_fold_rounds(cut, trial.trial_id, library, fitted, threads, data, folds, fold)
            (point,) = saved
            again = dataclasses.replace(
                ctx, notice=lambda: False, rounds_resumed={trial.trial_id: {1: point}}
            )
            foldcache.clear()
            continued, at = fit_fold_rounds(
                again, trial.trial_id, library, fitted, threads, data, folds, fold
            )
        if at != EXACT_CUT:
            raise RuntimeError(f"{library}: continued from {at}, not {EXACT_CUT}")
        p_whole = whole.predict_proba(fold.X_test)
        p_continued = continued.predict_proba(fold.X_test)
        s_whole = float(ctx.scorer(whole, fold.X_test, fold.y_test))
        s_continued = float(ctx.scorer(continued, fold.X_test, fold.y_test))
        identical = bool(np.array_equal(p_whole, p_continued)) and s_whole == s_continued
        delta = float(np.max(np.abs(p_whole - p_continued)))
        rows.append(
            [
                library,
                label,
                "yes" if identical else "no",
                f"{delta:.1e}",
                f"{abs(s_whole - s_continued):.1e}",
            ]
        )
        print(rows[-1], flush=True)
    return rows


def run(reps: int, quick: bool) -> None:
    warm_up()
    exact = _exactness_rows()
    cpu = _cpu_table(reps, quick)
    body = (
        cpu + "\n\nWhere continuing a cut fold is exact: one fold of "
        f"{DATASET} (3 folds) trained {EXACT_ROUNDS} rounds uninterrupted, against the same "
        f"fold cut after round {EXACT_CUT} on a stop, stored in the library's format and "
        "continued for the rounds left by a fresh fit (`fit_fold_rounds`, as the next worker "
        "does): bit-identical predictions and fold score, the largest difference of a "
        f"predicted probability, and of the fold's {METRIC}.\n\n"
        + table(
            ["library", "randomness", "bit-identical", "largest Δ probability", f"Δ {METRIC}"],
            exact,
        )
    )
    write_section("round-checkpoints", "Preemption: round checkpoints", body)
