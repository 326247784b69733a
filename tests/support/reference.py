"""What scikit-learn's GridSearchCV reports for a grid: the scores tunefleet must equal."""

from __future__ import annotations

from typing import Any

from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from tunefleet_worker.datasets import Dataset
from tunefleet_worker.training import library_data, make_estimator

ParamsKey = tuple[tuple[str, Any], ...]


def params_key(params: dict[str, Any]) -> ParamsKey:
    return tuple(sorted(params.items()))


def gridsearch_means(
    library: str,
    data: Dataset,
    fixed: dict[str, Any],
    grid: Any,
    *,
    metric: str,
    folds: int,
    seed: int,
) -> dict[ParamsKey, float]:
    """`mean_test_score` per trial (fixed + grid point), same splitter and scorer as a study."""
    data = library_data(data, library)
    splitter = (StratifiedKFold if data.task == "classification" else KFold)(
        n_splits=folds, shuffle=True, random_state=seed
    )
    search = GridSearchCV(
        make_estimator(library, data.task, fixed, categorical=data.categorical),
        grid,
        scoring=metric,
        cv=splitter,
        refit=False,
        n_jobs=1,
    ).fit(data.X, data.y)
    return {
        params_key({**fixed, **params}): float(score)
        for params, score in zip(
            search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
        )
    }
