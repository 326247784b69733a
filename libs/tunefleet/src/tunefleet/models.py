"""Refitted models on the client: from the stored native file to a fitted scikit-learn estimator.

A model is stored in its library's own format (XGBoost UBJSON, LightGBM text, CatBoost cbm;
never pickle) with a `models` document (`ModelStored`: parameters, library version, dataset
hash, features and their dtypes, category levels, classes). `load_estimator` rebuilds the
library's scikit-learn estimator around it; `prepare` turns a raw DataFrame into the features
the model was trained on (same columns, same category levels).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunefleet_contract.messages import ModelStored
from tunefleet_runtime.tables import prepare as prepare_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_estimator", "prepare"]


def prepare(frame: pd.DataFrame, model: ModelStored) -> Any:
    """`frame`'s features as `model` takes them (extra columns, e.g. the target, are ignored)."""
    categories = {c.feature: c.levels for c in model.categories}
    return prepare_table(frame, model.feature_names, categories, model.missing_category)


def load_estimator(model: ModelStored, content: bytes) -> Any:
    """The fitted scikit-learn estimator of the library, holding the stored model."""
    if model.status != "done" or model.format is None:
        raise ValueError(f"trial {model.trial_id}: no stored model ({model.error or model.status})")
    classify = model.task == "classification"
    params = dict(model.params)
    with tempfile.TemporaryDirectory(prefix="tunefleet-model-") as tmp:
        path = Path(tmp) / f"model.{model.format}"
        path.write_bytes(content)
        if model.library == "xgboost":
            import xgboost

            cls = xgboost.XGBClassifier if classify else xgboost.XGBRegressor
            estimator = cls(**params, enable_categorical=bool(model.categories))
            estimator.load_model(path)
            return estimator
        if model.library == "catboost":
            import catboost

            cb = catboost.CatBoostClassifier if classify else catboost.CatBoostRegressor
            return cb().load_model(str(path), format="cbm")
        if model.library == "lightgbm":
            return _lightgbm(model, path.read_text(), params, classify)
    raise ValueError(f"{model.library}: no estimator to load")


def _lightgbm(model: ModelStored, text: str, params: dict[str, Any], classify: bool) -> Any:
    # LightGBM's scikit-learn estimators have no load: they are the Booster plus the state
    # `fit` leaves, which is set here as fit sets it (lightgbm/sklearn.py).
    import lightgbm
    import numpy as np

    booster = lightgbm.Booster(model_str=text)
    cls = lightgbm.LGBMClassifier if classify else lightgbm.LGBMRegressor
    estimator: Any = cls(**params, verbose=-1)
    estimator._Booster = booster
    estimator._n_features = booster.num_feature()
    estimator._n_features_in = booster.num_feature()
    estimator._fitted_with_feature_names = bool(model.feature_names) and bool(model.categories)
    estimator._objective = booster.params.get("objective") or (
        ("multiclass" if len(model.classes) > 2 else "binary") if classify else "regression"
    )
    estimator._best_iteration = booster.best_iteration
    estimator._best_score = booster.best_score
    estimator._evals_result = {}
    estimator._class_weight = None
    if classify:
        from sklearn.preprocessing import LabelEncoder

        # The worker trains on class indices (ModelStored.classes holds the labels).
        encoder = LabelEncoder().fit(np.arange(len(model.classes)))
        estimator._le = encoder
        estimator._class_map = {int(c): int(c) for c in encoder.classes_}
        estimator._classes = encoder.classes_
        estimator._n_classes = len(encoder.classes_)
    estimator.fitted_ = True
    return estimator
