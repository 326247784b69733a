"""Decision 5: a trial's mean score is GridSearchCV's mean_test_score, to 1e-9."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tunefleet_worker.training import run_trial

from tests.support.reference import gridsearch_means, local_study, params_key

GRIDS: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
    "xgboost": ({"n_estimators": 8}, {"max_depth": [2, 3], "learning_rate": [0.1, 0.3]}),
    "lightgbm": ({"n_estimators": 8}, {"num_leaves": [4, 8], "learning_rate": [0.1, 0.3]}),
    "catboost": ({"iterations": 8}, {"depth": [2, 3], "learning_rate": [0.1, 0.3]}),
}

CASES = [
    ("breast_cancer", "roc_auc"),
    ("iris", "accuracy"),
    ("diabetes", "neg_root_mean_squared_error"),
]


@pytest.mark.parametrize("library", sorted(GRIDS))
@pytest.mark.parametrize(("dataset_name", "metric"), CASES)
def test_mean_scores_equal_gridsearchcv(library: str, dataset_name: str, metric: str) -> None:
    fixed, grid = GRIDS[library]
    ctx, trials, dataset = local_study(
        library, fixed, grid, dataset_name, metric, study_id="parity"
    )
    ours = {params_key(t.params): run_trial(ctx, t) for t in trials}
    expected_means = gridsearch_means(library, dataset, fixed, grid, metric=metric, folds=3, seed=7)

    assert len(ours) == len(expected_means) == 4
    for key, expected in expected_means.items():
        result = ours[key]
        assert result.status == "done", result.error
        assert result.score is not None
        assert abs(result.score - expected) <= 1e-9
        assert len(result.fold_scores) == 3
        folds = [s for s in result.fold_scores if s is not None]
        assert len(folds) == 3
        assert abs(float(np.mean(folds)) - result.score) <= 1e-12
