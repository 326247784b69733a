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
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from tunefleet_contract.messages import TrialResult, TrialSpec, finite_or_none
from tunefleet_contract.params import THREAD_PARAM, Scalar
from tunefleet_contract.spec import Task

from tunefleet_worker.datasets import Dataset
from tunefleet_worker.foldcache import Fold, FoldSet, fold_set

__all__ = [
    "TrialContext",
    "cv_splits",
    "library_version",
    "make_estimator",
    "run_trial",
    "warm_up",
]

_DISTRIBUTIONS = {
    "xgboost": "xgboost-cpu",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "noop": "tunefleet-worker",
}

# Parameters that only steer the boosting, never the binned training set: trials that differ
# only in these share it. Anything not listed here is part of the cache key, so a parameter
# this list does not know about costs reuse, never correctness.
_LIGHTGBM_TRAINING_ONLY = frozenset(
    {
        "boosting_type",
        "colsample_bytree",
        "extra_trees",
        "learning_rate",
        "max_delta_step",
        "max_depth",
        "metric",
        "min_child_weight",
        "min_split_gain",
        "num_leaves",
        "path_smooth",
        "reg_alpha",
        "reg_lambda",
        "subsample",
        "subsample_freq",
    }
)
_CATBOOST_TRAINING_ONLY = frozenset(
    {
        "bagging_temperature",
        "boosting_type",
        "bootstrap_type",
        "depth",
        "grow_policy",
        "iterations",
        "l2_leaf_reg",
        "leaf_estimation_iterations",
        "leaf_estimation_method",
        "learning_rate",
        "max_depth",
        "max_leaves",
        "min_data_in_leaf",
        "n_estimators",
        "random_strength",
        "rsm",
        "subsample",
    }
)
_FAST_FIT_MODULES = ("xgboost", "lightgbm.sklearn", "catboost")
# What CatBoost's quantization reads; passed to Pool.quantize as the estimator would use them.
_CATBOOST_QUANTIZATION = ("border_count", "random_seed")


@cache
def library_version(library: str) -> str:
    # Cached: a metadata lookup costs about a millisecond, per trial that is most of a no-op.
    for dist in (_DISTRIBUTIONS[library], library):
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

    for module in ("sklearn.metrics", "sklearn.model_selection", *_FAST_FIT_MODULES):
        with contextlib.suppress(ImportError):  # a missing library fails its trials, not the worker
            importlib.import_module(module)


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

    def __post_init__(self) -> None:
        self.scorer = _scorer(self.metric)
        self.fold_set: FoldSet = fold_set(self.dataset, self.folds, self.seed)
        self.splits = self.fold_set.splits


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
        revision=ctx.revision,
        finished_at=time.time(),
        **fields,
    )


def _noop_scores(ctx: TrialContext, params: Mapping[str, Scalar]) -> list[float]:
    # Trains nothing: the pipeline-overhead benchmark and the fault-injection suite use it.
    ctx.sleep(float(params.get("sleep_s") or 0.0))
    if params.get("fail"):
        raise RuntimeError("noop model asked to fail")
    return [float(params.get("score") or 0.0)] * ctx.folds


def _key(library: str, fold: Fold, params: Mapping[str, Any], skip: frozenset[str]) -> Hashable:
    return (library, fold.index, repr(sorted((k, v) for k, v in params.items() if k not in skip)))


def _fit_xgboost(estimator: Any, fold: Fold, folds: FoldSet) -> None:
    # XGBoost's estimators build their training matrix through this one method; the cached
    # matrix is the one that method returns for the same arguments.
    build = estimator._create_dmatrix

    def create_dmatrix(ref: Any = None, **kwargs: Any) -> Any:
        extras = ("weight", "base_margin", "feature_weights", "group", "qid")
        if (
            ref is not None
            or kwargs.get("data") is not fold.X_train
            or any(kwargs.get(name) is not None for name in extras)
        ):
            return build(ref, **kwargs)
        key = (
            "xgboost",
            fold.index,
            estimator.tree_method,
            estimator.device,
            estimator.booster == "gblinear",
            estimator.max_bin,
            estimator.n_jobs,
            repr(sorted((k, v) for k, v in kwargs.items() if k not in ("data", "label"))),
        )
        return folds.structure(key, lambda: build(ref, **kwargs))

    estimator._create_dmatrix = create_dmatrix
    try:
        estimator.fit(fold.X_train, fold.y_train)
    finally:
        del estimator._create_dmatrix


@contextlib.contextmanager
def _lightgbm_datasets(fold: Fold, folds: FoldSet) -> Iterator[None]:
    # LGBMModel.fit constructs its `Dataset` through this module attribute; LightGBM itself
    # refuses (and, with the raw data kept, rebuilds) a constructed Dataset whose dataset
    # parameters differ, so a reused one always matches what a fresh one would be.
    import lightgbm.basic
    import lightgbm.sklearn

    module: Any = lightgbm.sklearn
    # The class itself, not whatever the attribute holds now: an abandoned job's training
    # thread may still be inside its own fit, and restoring must never restore a stale patch.
    real = lightgbm.basic.Dataset

    def dataset(*args: Any, **kwargs: Any) -> Any:
        extras = ("reference", "weight", "group", "init_score", "position")
        if (
            args
            or kwargs.get("data") is not fold.X_train
            or any(kwargs.get(name) is not None for name in extras)
        ):
            return real(*args, **kwargs)
        key = (
            _key("lightgbm", fold, kwargs.get("params") or {}, _LIGHTGBM_TRAINING_ONLY),
            repr(kwargs.get("categorical_feature")),
            repr(kwargs.get("feature_name")),
        )
        return folds.structure(key, lambda: real(*args, **{**kwargs, "free_raw_data": False}))

    module.Dataset = dataset
    try:
        yield
    finally:
        module.Dataset = real


def _fit_lightgbm(estimator: Any, fold: Fold, folds: FoldSet) -> None:
    with _lightgbm_datasets(fold, folds):
        estimator.fit(fold.X_train, fold.y_train)


def _fit_catboost(estimator: Any, fold: Fold, folds: FoldSet) -> None:
    # CatBoost's estimators accept a Pool in place of X; quantized once with the trial's own
    # quantization parameters it trains exactly as from the raw arrays.
    import catboost

    params = estimator.get_params()

    def build() -> Any:
        pool = catboost.Pool(fold.X_train, fold.y_train)
        pool.quantize(**{k: params[k] for k in _CATBOOST_QUANTIZATION if params.get(k) is not None})
        return pool

    pool = folds.structure(_key("catboost", fold, params, _CATBOOST_TRAINING_ONLY), build)
    estimator.fit(pool)


_FAST_FIT: dict[str, Callable[[Any, Fold, FoldSet], None]] = {
    "xgboost": _fit_xgboost,
    "lightgbm": _fit_lightgbm,
    "catboost": _fit_catboost,
}


def _cross_validate(
    ctx: TrialContext, library: str, params: Mapping[str, Scalar], threads: int
) -> tuple[list[float], float, float]:
    fit_time = score_time = 0.0
    scores: list[float] = []
    fast_fit = _FAST_FIT.get(library) if ctx.reuse_structures else None
    for fold in ctx.fold_set:
        estimator = make_estimator(library, ctx.dataset.task, params, threads)
        t0 = time.perf_counter()
        if fast_fit is not None:
            fast_fit(estimator, fold, ctx.fold_set)
        else:
            estimator.fit(fold.X_train, fold.y_train)
        t1 = time.perf_counter()
        scores.append(float(ctx.scorer(estimator, fold.X_test, fold.y_test)))
        fit_time += t1 - t0
        score_time += time.perf_counter() - t1
    return scores, fit_time, score_time


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
            scores, fit_time, score_time = _cross_validate(ctx, trial.library, params, threads)
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
