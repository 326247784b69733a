"""XGBoost: its scikit-learn estimator around a stored UBJSON model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunefleet_contract.messages import ModelStored

from tunefleet.estimators import ModelLoader


class XGBoost(ModelLoader):
    name = "xgboost"

    def load(self, model: ModelStored, path: Path, classify: bool) -> Any:
        import xgboost

        cls = xgboost.XGBClassifier if classify else xgboost.XGBRegressor
        params: dict[str, Any] = dict(model.params)
        estimator = cls(**params, enable_categorical=bool(model.categories))
        estimator.load_model(path)
        return estimator


LOADER = XGBoost()
