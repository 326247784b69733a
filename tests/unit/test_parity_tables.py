"""Decision 5 on real tables: categorical columns and missing values, handled natively by each
library, score exactly what GridSearchCV gives for the same estimator on the same DataFrame."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from tunefleet_publisher.planner import expand
from tunefleet_runtime.tables import MISSING_CATEGORY
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker.datasets import DatasetError, from_frame
from tunefleet_worker.training import TrialContext, library_data, run_trial

from tests.support.reference import gridsearch_means, params_key
from tests.support.tables import mixed_table

GRIDS: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
    "xgboost": ({"n_estimators": 6, "tree_method": "hist"}, {"max_depth": [2, 4]}),
    "lightgbm": ({"n_estimators": 6, "min_child_samples": 5}, {"num_leaves": [4, 8]}),
    "catboost": ({"iterations": 6}, {"depth": [2, 4]}),
}


def test_a_table_keeps_its_categories_and_missing_values() -> None:
    frame = mixed_table()
    data = from_frame(frame, "target")
    assert data.categorical == ("plan", "region")
    assert data.feature_names == ("age", "income", "plan", "region")
    assert list(data.X["plan"].cat.categories) == ["basic", "plus", "pro"]
    assert data.X["plan"].isna().sum() == frame["plan"].isna().sum() > 0  # NaN stays missing
    assert data.X["age"].isna().sum() == frame["age"].isna().sum() > 0
    catboost = library_data(data, "catboost")
    assert catboost.X["plan"].isna().sum() == 0 and MISSING_CATEGORY in set(catboost.X["plan"])
    assert library_data(data, "xgboost") is data and library_data(data, "catboost") is catboost
    assert data.X["plan"].isna().sum() > 0  # the view is a copy


def test_numeric_tables_stay_arrays() -> None:
    data = from_frame(mixed_table().drop(columns=["plan", "region"]), "target")
    assert data.categorical == () and data.X.dtype == "float64"
    assert data.feature_names == ("age", "income")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda f: f.assign(when=pd.Timestamp("2024-01-01")), "'when' is datetime64"),
        (lambda f: f.assign(target=f["target"].where(f.index > 3)), "4 missing values"),
        (lambda f: f.drop(columns=["target"]), "no column 'target'"),
    ],
)
def test_tables_that_cannot_be_used(change: Any, error: str) -> None:
    with pytest.raises(DatasetError, match=error):
        from_frame(change(mixed_table()), "target")


@pytest.mark.parametrize("library", sorted(GRIDS))
@pytest.mark.parametrize("regression", [False, True])
def test_mean_scores_equal_gridsearchcv_on_tables(library: str, regression: bool) -> None:
    fixed, grid = GRIDS[library]
    metric = "r2" if regression else "roc_auc"
    data = from_frame(mixed_table(regression=regression), "target")
    assert data.task == ("regression" if regression else "classification")
    spec = parse_spec(
        {
            "dataset": {"kind": "upload", "target": "target"},
            "metric": metric,
            "cv": {"folds": 3, "seed": 7},
            "search": {library: {"fixed": fixed, "grid": grid}},
        }
    )
    ctx = TrialContext(
        study_id="tables",
        dataset=data,
        metric=metric,
        folds=3,
        seed=7,
        worker="t",
        attempts=1,
        threads=1,
    )
    ours = {params_key(t.params): run_trial(ctx, t) for t in expand(spec, "tables")}
    # Twice: the second run reuses the cached folds and training structures.
    again = {params_key(t.params): run_trial(ctx, t) for t in expand(spec, "tables")}
    expected = gridsearch_means(library, data, fixed, grid, metric=metric, folds=3, seed=7)
    assert len(ours) == len(expected) == 2
    for key, score in expected.items():
        assert ours[key].status == "done", ours[key].error
        assert ours[key].score is not None and abs(ours[key].score - score) <= 1e-9
        assert again[key].score == ours[key].score
