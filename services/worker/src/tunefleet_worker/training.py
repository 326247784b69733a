"""Cross-validating one trial exactly as scikit-learn's GridSearchCV would score it."""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tunefleet.messages import TrialResult, TrialSpec, finite_or_none
from tunefleet.params import THREAD_PARAM, Scalar
from tunefleet.spec import Task

from tunefleet_worker.datasets import Dataset

__all__ = ["TrialContext", "cv_splits", "make_estimator", "run_trial"]

_DISTRIBUTIONS = {
    "xgboost": "xgboost-cpu",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "noop": "tunefleet-worker",
}


def library_version(library: str) -> str:
    for dist in (_DISTRIBUTIONS[library], library):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def make_estimator(library: str, task: Task, params: Mapping[str, Scalar], threads: int = 1) -> Any:
    """The scikit-learn estimator a trial trains; the parity test builds GridSearchCV on it."""
    classify = task == "classification"
    kwargs: dict[str, Any] = {THREAD_PARAM[library]: threads, **params}
    if library == "xgboost":
        import xgboost

        return (xgboost.XGBClassifier if classify else xgboost.XGBRegressor)(**kwargs)
    if library == "lightgbm":
        import lightgbm

        kwargs.setdefault("verbose", -1)
        return (lightgbm.LGBMClassifier if classify else lightgbm.LGBMRegressor)(**kwargs)
    if library == "catboost":
        import catboost

        kwargs.update(verbose=False, allow_writing_files=False)
        return (catboost.CatBoostClassifier if classify else catboost.CatBoostRegressor)(**kwargs)
    raise ValueError(f"no estimator for library {library!r}")


def cv_splits(dataset: Dataset, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (StratifiedKFold if dataset.task == "classification" else KFold)(
        n_splits=folds, shuffle=True, random_state=seed
    )
    return list(splitter.split(dataset.X, dataset.y))


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
    sleep: Callable[[float], object] = time.sleep

    def __post_init__(self) -> None:
        from sklearn.metrics import get_scorer

        self.scorer = get_scorer(self.metric)
        self.splits = cv_splits(self.dataset, self.folds, self.seed)


def _result(ctx: TrialContext, trial: TrialSpec, **fields: Any) -> TrialResult:
    return TrialResult(
        study_id=ctx.study_id,
        trial_id=trial.trial_id,
        library=trial.library,
        params=trial.params,
        metric=ctx.metric,
        task=ctx.dataset.task,
        library_version=library_version(trial.library),
        worker=ctx.worker,
        attempts=ctx.attempts,
        finished_at=time.time(),
        **fields,
    )


def _noop_scores(ctx: TrialContext, params: Mapping[str, Scalar]) -> list[float]:
    # Trains nothing: the pipeline-overhead benchmark and the fault-injection suite use it.
    ctx.sleep(float(params.get("sleep_s") or 0.0))
    if params.get("fail"):
        raise RuntimeError("noop model asked to fail")
    return [float(params.get("score") or 0.0)] * ctx.folds


def run_trial(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """Train and score one trial; a library error becomes a `failed` result, never a raise."""
    params = dict(trial.params)
    threads = int(params.pop(THREAD_PARAM[trial.library], ctx.threads))  # type: ignore[arg-type]
    fit_time = score_time = 0.0
    try:
        if trial.library == "noop":
            started = time.perf_counter()
            scores = _noop_scores(ctx, params)
            fit_time = time.perf_counter() - started
        else:
            from sklearn.base import clone

            template = make_estimator(trial.library, ctx.dataset.task, params, threads)
            scores = []
            X, y = ctx.dataset.X, ctx.dataset.y
            for train, test in ctx.splits:
                estimator = clone(template)
                t0 = time.perf_counter()
                estimator.fit(X[train], y[train])
                t1 = time.perf_counter()
                scores.append(float(ctx.scorer(estimator, X[test], y[test])))
                fit_time += t1 - t0
                score_time += time.perf_counter() - t1
    except Exception as exc:  # any library error is the trial's result, not the worker's crash
        return _result(
            ctx,
            trial,
            status="failed",
            reason="training-error",
            error=f"{type(exc).__name__}: {exc}"[:10_000],
            fit_time_s=fit_time,
        )
    mean = float(np.mean(scores))
    return _result(
        ctx,
        trial,
        status="done",
        score=finite_or_none(mean),
        score_std=finite_or_none(float(np.std(scores))),
        fold_scores=[finite_or_none(s) for s in scores],
        fit_time_s=fit_time,
        score_time_s=score_time,
    )
