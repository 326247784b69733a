"""LightGBM: LGBMClassifier / LGBMRegressor, fitted on the fold cache's binned Dataset."""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from tunefleet_contract.spec import Task

from tunefleet_worker.foldcache import Fold, FoldSet
from tunefleet_worker.libraries import AfterRound, ModelLibrary, ShouldStop, structure_key

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


def _dataset_from(fold: Fold, folds: FoldSet) -> Callable[..., Any]:
    """What a fit on `fold` builds its training `Dataset` with: the fold cache's, for the fold's
    own training rows and the same dataset parameters (LightGBM itself refuses, and with the
    raw data kept rebuilds, a constructed Dataset whose dataset parameters differ, so a reused
    one always matches what a fresh one would be); a fresh one for anything else."""
    import lightgbm.basic

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

    return dataset


@cache
def _estimators() -> dict[str, type[Any]]:
    """LightGBM's estimator classes, each able to fit on the fold cache's Dataset.

    `LGBMModel.fit` builds its training set with the module's `Dataset`. Rather than replace
    that attribute (process-wide, while other threads may be inside a fit of their own), each
    class here runs `LGBMModel.fit`'s own code with `Dataset` bound, for that one call, to the
    fold cache's (`fit_reusing`); without one it is LightGBM's fit, unchanged. The subclasses
    keep LightGBM's parameters, scikit-learn's cloning and the classifier's label handling
    (LGBMClassifier.fit, then this class's fit through `super()`)."""
    import lightgbm.sklearn

    base = lightgbm.sklearn.LGBMModel
    code = base.fit

    class Reusing(base):  # type: ignore[misc,valid-type]
        _dataset: Callable[..., Any] | None = None

        def fit(self, *args: Any, **kwargs: Any) -> Any:
            dataset = self._dataset
            if dataset is None:
                return code(self, *args, **kwargs)
            scope = {**vars(lightgbm.sklearn), "Dataset": dataset}
            fit = types.FunctionType(
                code.__code__, scope, code.__name__, code.__defaults__, code.__closure__
            )
            fit.__kwdefaults__ = code.__kwdefaults__
            return fit(self, *args, **kwargs)

        def fit_reusing(
            self, X: Any, y: Any, dataset: Callable[..., Any], **fit_kwargs: Any
        ) -> None:
            self._dataset = dataset
            try:
                self.fit(X, y, **fit_kwargs)
            finally:
                del self._dataset

    return {
        task: type(cls.__name__, (cls, Reusing), {"__module__": __name__})
        for task, cls in (
            ("classification", lightgbm.sklearn.LGBMClassifier),
            ("regression", lightgbm.sklearn.LGBMRegressor),
        )
    }


class LightGBM(ModelLibrary):
    name = "lightgbm"
    distribution = "lightgbm"
    modules = ("lightgbm.sklearn",)

    def make_estimator(
        self, task: Task, kwargs: dict[str, Any], categorical: Sequence[str] = ()
    ) -> Any:
        # Categorical columns need nothing: LightGBM takes pandas `category` columns as such.
        kwargs.setdefault("verbose", -1)
        return _estimators()[task](**kwargs)

    def cut(self, rounds: int) -> dict[str, Any]:
        return {"num_iteration": rounds}

    model_format = "txt"

    def save_model(self, estimator: Any, path: Path) -> None:
        estimator.booster_.save_model(path)

    lockstep = True

    def fit_observed(
        self, estimator: Any, fold: Fold, folds: FoldSet, metric: str, after_round: AfterRound
    ) -> None:
        import lightgbm

        def observe(env: Any) -> None:
            for data, name, value, _ in env.evaluation_result_list:
                if data == "valid_0" and name == metric:
                    best = after_round(float(value))
                    if best is not None:
                        # As lgb.early_stopping stops: the booster keeps its trees and
                        # records the best iteration (0-based here).
                        raise lightgbm.callback.EarlyStopException(
                            best - 1, env.evaluation_result_list
                        )
                    return
            raise ValueError(f"LightGBM reported no {metric!r} on the validation fold")

        observe.order = 30  # type: ignore[attr-defined]  # where lgb.early_stopping runs
        self.fit(
            estimator,
            fold,
            folds,
            eval_X=(fold.X_test,),
            eval_y=(fold.y_test,),
            eval_metric=metric,
            callbacks=[observe],
        )

    def fit_stoppable(
        self,
        estimator: Any,
        fold: Fold,
        folds: FoldSet,
        stop: ShouldStop,
        init_model: Path | None = None,
    ) -> None:
        import lightgbm

        def cut(env: Any) -> None:
            if stop():
                # Ends training keeping every tree (as best iteration: all of them, 0-based).
                raise lightgbm.callback.EarlyStopException(env.iteration, [])

        if init_model is None:
            self.fit(estimator, fold, folds, callbacks=[cut])
        else:
            # LightGBM's own fit, not the cached Dataset: a continuation sets the training
            # set's init scores from the booster, which a shared Dataset must never get.
            estimator.fit(fold.X_train, fold.y_train, init_model=str(init_model), callbacks=[cut])

    def rounds_trained(self, estimator: Any) -> int:
        return int(estimator.booster_.current_iteration())

    def fit(self, estimator: Any, fold: Fold, folds: FoldSet, **fit_kwargs: Any) -> None:
        estimator.fit_reusing(fold.X_train, fold.y_train, _dataset_from(fold, folds), **fit_kwargs)


LIBRARY = LightGBM()
