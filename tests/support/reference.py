"""What scikit-learn's GridSearchCV reports for a grid: the scores tunefleet must equal."""

from __future__ import annotations

from typing import Any

from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from tunefleet_contract.messages import TrialSpec
from tunefleet_publisher.planner import expand
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker.datasets import Dataset, load_dataset
from tunefleet_worker.training import TrialContext, library_data, make_estimator

ParamsKey = tuple[tuple[str, Any], ...]


def params_key(params: dict[str, Any]) -> ParamsKey:
    return tuple(sorted(params.items()))


def local_study(
    library: str,
    fixed: dict[str, Any],
    grid: Any,
    dataset: str,
    metric: str,
    *,
    study_id: str = "local",
    folds: int = 3,
    seed: int = 7,
) -> tuple[TrialContext, list[TrialSpec], Dataset]:
    """One library's grid on a built-in dataset as a worker would run it in one process: the
    trial context, the planner's trials, and the data."""
    spec = parse_spec(
        {
            "dataset": dataset,
            "metric": metric,
            "cv": {"folds": folds, "seed": seed},
            "search": {library: {"fixed": fixed, "grid": grid}},
        }
    )
    data = load_dataset(spec.dataset)
    ctx = TrialContext(
        study_id=study_id,
        dataset=data,
        metric=metric,
        folds=folds,
        seed=seed,
        worker="test",
        attempts=1,
        threads=1,
    )
    return ctx, list(expand(spec, study_id)), data


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
