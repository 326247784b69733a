"""CatBoost: CatBoostClassifier / CatBoostRegressor, fitted on the fold cache's quantized Pool."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunefleet_contract.spec import Task

from tunefleet_worker.foldcache import Fold, FoldSet
from tunefleet_worker.libraries import AfterRound, ModelLibrary, ShouldStop, structure_key

# Parameters that only steer the boosting, never the quantized pool (see lightgbm.py).
TRAINING_ONLY = frozenset(
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
# What CatBoost's quantization reads; passed to Pool.quantize as the estimator would use them.
QUANTIZATION = ("border_count", "random_seed")


class CatBoost(ModelLibrary):
    name = "catboost"
    distribution = "catboost"
    modules = ("catboost",)
    # "Invalid type for cat_feature ... NaN values should be converted to string".
    missing_category = True

    def make_estimator(
        self, task: Task, kwargs: dict[str, Any], categorical: Sequence[str] = ()
    ) -> Any:
        import catboost

        kwargs.update(verbose=False, allow_writing_files=False)
        if categorical:
            kwargs["cat_features"] = tuple(categorical)  # a list fails sklearn.clone
        classify = task == "classification"
        return (catboost.CatBoostClassifier if classify else catboost.CatBoostRegressor)(**kwargs)

    def cut(self, rounds: int) -> dict[str, Any]:
        return {"ntree_end": rounds}

    model_format = "cbm"

    def save_model(self, estimator: Any, path: Path) -> None:
        estimator.save_model(str(path), format="cbm")

    def fit_observed(
        self, estimator: Any, fold: Fold, folds: FoldSet, metric: str, after_round: AfterRound
    ) -> None:
        # CatBoost's callbacks cannot hold a fold back for the others, and its own cv stops
        # each fold on its own: every fold trains to the limit and its history is read.
        # use_best_model=False keeps the whole model (the scorer cuts it).
        estimator.set_params(eval_metric=metric, use_best_model=False)
        self.fit(estimator, fold, folds, eval_set=(fold.X_test, fold.y_test))
        for value in estimator.get_evals_result()["validation"][metric]:
            after_round(float(value))

    def fit_stoppable(
        self,
        estimator: Any,
        fold: Fold,
        folds: FoldSet,
        stop: ShouldStop,
        init_model: Path | None = None,
    ) -> None:
        class Cut:
            def after_iteration(self, info: Any) -> bool:
                return not stop()  # False ends training, keeping the trees so far

        if init_model is None:
            self.fit(estimator, fold, folds, callbacks=[Cut()])
        else:
            estimator.fit(fold.X_train, fold.y_train, init_model=str(init_model), callbacks=[Cut()])

    def rounds_trained(self, estimator: Any) -> int:
        return int(estimator.tree_count_)

    def continued_params(self, init_model: Path) -> dict[str, Any]:
        import catboost

        # Without it CatBoost picks a learning rate for the rounds left, not for them all.
        model = catboost.CatBoost()
        model.load_model(str(init_model))
        return {"learning_rate": float(model.get_all_params()["learning_rate"])}

    def fit(self, estimator: Any, fold: Fold, folds: FoldSet, **fit_kwargs: Any) -> None:
        # CatBoost's estimators accept a Pool in place of X; quantized once with the trial's
        # own quantization parameters it trains exactly as from the raw arrays.
        import catboost

        params = estimator.get_params()

        def build() -> Any:
            pool = catboost.Pool(
                fold.X_train, fold.y_train, cat_features=params.get("cat_features")
            )
            pool.quantize(**{k: params[k] for k in QUANTIZATION if params.get(k) is not None})
            return pool

        pool = folds.structure(structure_key("catboost", fold, params, TRAINING_ONLY), build)
        estimator.fit(pool, **fit_kwargs)


LIBRARY = CatBoost()
