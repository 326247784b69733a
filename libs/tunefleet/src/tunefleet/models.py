"""Refitted models on the client: from the stored native file to a fitted scikit-learn estimator.

A model is stored in its library's own format (XGBoost UBJSON, LightGBM text, CatBoost cbm;
never pickle) with a `models` document (`ModelStored`: parameters, library version, dataset
hash, features and their dtypes, category levels, classes). `load_estimator` rebuilds the
library's scikit-learn estimator around it (the library's loader in `tunefleet.estimators`);
`prepare` turns a raw DataFrame into the features the model was trained on (same columns,
same category levels).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunefleet_contract.messages import ModelStored
from tunefleet_runtime.tables import prepare as prepare_table

from tunefleet.estimators import model_loaders

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
    loader = model_loaders().get(model.library)
    if loader is None:
        raise ValueError(f"{model.library}: no estimator to load")
    with tempfile.TemporaryDirectory(prefix="tunefleet-model-") as tmp:
        path = Path(tmp) / f"model.{model.format}"
        path.write_bytes(content)
        return loader.load(model, path, model.task == "classification")
