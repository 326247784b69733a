"""CatBoost: its scikit-learn estimator around a stored cbm model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunefleet_contract.messages import ModelStored

from tunefleet.estimators import ModelLoader


class CatBoost(ModelLoader):
    name = "catboost"

    def load(self, model: ModelStored, path: Path, classify: bool) -> Any:
        import catboost

        cls = catboost.CatBoostClassifier if classify else catboost.CatBoostRegressor
        return cls().load_model(str(path), format="cbm")


LOADER = CatBoost()
