"""A stored model (native format) comes back as a fitted scikit-learn estimator that predicts
exactly what a local fit of the same parameters on the same data predicts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tunefleet.models import load_estimator, prepare
from tunefleet_contract.messages import FeatureLevels, ModelStored
from tunefleet_contract.spec import UploadDataset
from tunefleet_runtime.tables import MISSING_CATEGORY
from tunefleet_worker.datasets import from_frame
from tunefleet_worker.refit import save_native
from tunefleet_worker.training import library_data, make_estimator

from tests.support.tables import mixed_table

PARAMS: dict[str, dict[str, Any]] = {
    "xgboost": {"n_estimators": 7, "max_depth": 3},
    "lightgbm": {"n_estimators": 7, "num_leaves": 6, "min_child_samples": 5},
    "catboost": {"iterations": 7, "depth": 3},
}


@pytest.mark.parametrize("library", sorted(PARAMS))
@pytest.mark.parametrize(
    ("regression", "categorical"), [(False, True), (True, True), (False, False)]
)
def test_stored_model_predicts_as_a_local_fit(
    library: str, regression: bool, categorical: bool
) -> None:
    frame = mixed_table(regression=regression)
    if not categorical:
        frame = frame.drop(columns=["plan", "region"])
    data = from_frame(frame, "target")
    view = library_data(data, library)
    fitted = make_estimator(library, data.task, PARAMS[library], 1, view.categorical)
    fitted.fit(view.X, view.y)
    content, fmt = save_native(library, fitted)
    model = ModelStored(
        study_id="s",
        trial_id="0" * 24,
        library=library,
        params=PARAMS[library],
        status="done",
        format=fmt,
        dataset=UploadDataset(kind="upload", target="target", sha256="a" * 64, format="csv"),
        task=data.task,
        feature_names=list(data.feature_names),
        categories=[
            FeatureLevels(feature=n, levels=list(data.X[n].cat.categories))
            for n in data.categorical
        ],
        classes=list(data.classes),
        missing_category=MISSING_CATEGORY if view is not data else None,
        finished_at=0.0,
    )
    loaded = load_estimator(model, content)

    local = make_estimator(library, data.task, PARAMS[library], 1, view.categorical)
    local.fit(view.X, view.y)
    test = mixed_table(rows=80, seed=11, regression=regression)  # rows it never saw
    X = prepare(test, model)
    assert np.array_equal(loaded.predict(X), local.predict(X))
    if not regression:
        assert np.array_equal(loaded.predict_proba(X), local.predict_proba(X))
        assert model.classes == [0, 1]


def test_every_library_that_stores_models_has_a_loader() -> None:
    from tunefleet.estimators import model_loaders
    from tunefleet_worker.libraries import model_libraries

    storing = {name for name, lib in model_libraries().items() if lib.model_format is not None}
    assert set(model_loaders()) == storing == {"catboost", "lightgbm", "xgboost"}
