"""LightGBM: its scikit-learn estimator around a stored text model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunefleet_contract.messages import ModelStored

from tunefleet.estimators import ModelLoader


class LightGBM(ModelLoader):
    name = "lightgbm"

    def load(self, model: ModelStored, path: Path, classify: bool) -> Any:
        # LightGBM's scikit-learn estimators have no load: they are the Booster plus the state
        # `fit` leaves, which is set here as fit sets it (lightgbm/sklearn.py).
        import lightgbm
        import numpy as np

        booster = lightgbm.Booster(model_str=path.read_text())
        cls = lightgbm.LGBMClassifier if classify else lightgbm.LGBMRegressor
        params: dict[str, Any] = dict(model.params)
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


LOADER = LightGBM()
