"""LightGBM: LGBMClassifier / LGBMRegressor, fitted on the fold cache's binned Dataset."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tunefleet_contract.spec import Task

from tunefleet_worker.foldcache import Fold, FoldSet
from tunefleet_worker.libraries import ModelLibrary, structure_key

# Parameters that only steer the boosting, never the binned training set: trials that differ
# only in these share it. Anything not listed here is part of the cache key, so a parameter
# this list does not know about costs reuse, never correctness.
TRAINING_ONLY = frozenset(
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


@contextlib.contextmanager
def _cached_datasets(fold: Fold, folds: FoldSet) -> Iterator[None]:
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
            structure_key("lightgbm", fold, kwargs.get("params") or {}, TRAINING_ONLY),
            repr(kwargs.get("categorical_feature")),
            repr(kwargs.get("feature_name")),
        )
        return folds.structure(key, lambda: real(*args, **{**kwargs, "free_raw_data": False}))

    module.Dataset = dataset
    try:
        yield
    finally:
        module.Dataset = real


class LightGBM(ModelLibrary):
    name = "lightgbm"
    distribution = "lightgbm"
    modules = ("lightgbm.sklearn",)

    def make_estimator(
        self, task: Task, kwargs: dict[str, Any], categorical: Sequence[str] = ()
    ) -> Any:
        # Categorical columns need nothing: LightGBM takes pandas `category` columns as such.
        import lightgbm

        kwargs.setdefault("verbose", -1)
        classify = task == "classification"
        return (lightgbm.LGBMClassifier if classify else lightgbm.LGBMRegressor)(**kwargs)

    def cut(self, rounds: int) -> dict[str, Any]:
        return {"num_iteration": rounds}

    model_format = "txt"

    def save_model(self, estimator: Any, path: Path) -> None:
        estimator.booster_.save_model(path)

    def fit(self, estimator: Any, fold: Fold, folds: FoldSet) -> None:
        with _cached_datasets(fold, folds):
            estimator.fit(fold.X_train, fold.y_train)


LIBRARY = LightGBM()
