"""Decision 5: a trial's mean score is GridSearchCV's mean_test_score, to 1e-9."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from tunefleet.spec import parse_spec
from tunefleet.trials import expand
from tunefleet_worker.datasets import load_dataset
from tunefleet_worker.training import TrialContext, make_estimator, run_trial

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
    spec = parse_spec(
        {
            "dataset": dataset_name,
            "metric": metric,
            "cv": {"folds": 3, "seed": 7},
            "search": {library: {"fixed": fixed, "grid": grid}},
        }
    )
    dataset = load_dataset(spec.dataset)
    ctx = TrialContext(
        study_id="parity",
        dataset=dataset,
        metric=metric,
        folds=3,
        seed=7,
        worker="test",
        attempts=1,
        threads=1,
    )
    trials = list(expand(spec, "parity"))
    ours = {tuple(sorted(t.params.items())): run_trial(ctx, t) for t in trials}

    splitter = (StratifiedKFold if dataset.task == "classification" else KFold)(
        n_splits=3, shuffle=True, random_state=7
    )
    search = GridSearchCV(
        make_estimator(library, dataset.task, fixed),
        grid,
        scoring=metric,
        cv=splitter,
        refit=False,
        n_jobs=1,
    )
    search.fit(dataset.X, dataset.y)

    assert len(ours) == len(search.cv_results_["params"]) == 4
    for params, expected in zip(
        search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
    ):
        result = ours[tuple(sorted({**fixed, **params}.items()))]
        assert result.status == "done", result.error
        assert result.score is not None
        assert abs(result.score - float(expected)) <= 1e-9
        assert len(result.fold_scores) == 3
        folds = [s for s in result.fold_scores if s is not None]
        assert len(folds) == 3
        assert abs(float(np.mean(folds)) - result.score) <= 1e-12
