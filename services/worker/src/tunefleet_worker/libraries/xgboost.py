"""XGBoost: XGBClassifier / XGBRegressor, fitted on the fold cache's DMatrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunefleet_contract.spec import Task

from tunefleet_worker.foldcache import Fold, FoldSet
from tunefleet_worker.libraries import AfterRound, ModelLibrary, ShouldStop


class XGBoost(ModelLibrary):
    name = "xgboost"
    distribution = "xgboost-cpu"
    modules = ("xgboost",)

    def make_estimator(
        self, task: Task, kwargs: dict[str, Any], categorical: Sequence[str] = ()
    ) -> Any:
        import xgboost

        if categorical:
            kwargs["enable_categorical"] = True  # pandas `category` columns, with `hist`
        classify = task == "classification"
        return (xgboost.XGBClassifier if classify else xgboost.XGBRegressor)(**kwargs)

    def cut(self, rounds: int) -> dict[str, Any]:
        return {"iteration_range": (0, rounds)}

    model_format = "ubj"

    def save_model(self, estimator: Any, path: Path) -> None:
        estimator.save_model(path)  # the scikit-learn wrapper's: it keeps its attributes

    lockstep = True

    def fit_observed(
        self, estimator: Any, fold: Fold, folds: FoldSet, metric: str, after_round: AfterRound
    ) -> None:
        import xgboost

        class Observe(xgboost.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                # The value as XGBoost's own EarlyStopping and xgb.cv read it.
                return after_round(float(evals_log["validation_0"][metric][-1])) is not None

        # The metric only evaluates; it changes no tree. Training without stopping
        # arguments keeps every round trained: the scorer cuts at the best one.
        estimator.set_params(eval_metric=metric, callbacks=[Observe()])
        try:
            self.fit(estimator, fold, folds, eval_set=[(fold.X_test, fold.y_test)], verbose=False)
        finally:
            estimator.set_params(callbacks=None)

    def fit_stoppable(
        self,
        estimator: Any,
        fold: Fold,
        folds: FoldSet,
        stop: ShouldStop,
        init_model: Path | None = None,
    ) -> None:
        import xgboost

        class Stop(xgboost.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                return stop()

        estimator.set_params(callbacks=[Stop()])
        try:
            if init_model is None:
                self.fit(estimator, fold, folds)
            else:  # its own matrix: a continuation is one fit of many, not worth caching
                estimator.fit(fold.X_train, fold.y_train, xgb_model=str(init_model))
        finally:
            estimator.set_params(callbacks=None)

    def rounds_trained(self, estimator: Any) -> int:
        return int(estimator.get_booster().num_boosted_rounds())

    def fit(self, estimator: Any, fold: Fold, folds: FoldSet, **fit_kwargs: Any) -> None:
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
            estimator.fit(fold.X_train, fold.y_train, **fit_kwargs)
        finally:
            del estimator._create_dmatrix


LIBRARY = XGBoost()
