"""Studies that more than one suite runs, with what scikit-learn says their scores are."""

from __future__ import annotations

from typing import Any

from tunefleet_runtime.validation import parse_spec
from tunefleet_worker.datasets import load_dataset

from tests.support.reference import ParamsKey, gridsearch_means

# All three libraries, 30 trials on breast_cancer: families (xgboost's two n_estimators share a
# fit per fold), subsampling, a list of grids (catboost).
THREE_LIBRARIES: dict[str, dict[str, Any]] = {
    "xgboost": {
        "fixed": {"subsample": 0.7},
        "grid": {"max_depth": [2, 3, 4], "learning_rate": [0.1, 0.3], "n_estimators": [5, 10]},
    },
    "lightgbm": {
        "fixed": {"n_estimators": 10},
        "grid": {"num_leaves": [4, 8, 16], "learning_rate": [0.1, 0.3], "subsample": [0.7, 1.0]},
    },
    "catboost": {
        "fixed": {"iterations": 10},
        "grid": [{"depth": [2, 3], "learning_rate": [0.1, 0.3]}, {"depth": [4, 5]}],
    },
}
THREE_LIBRARIES_SPEC: dict[str, Any] = {
    "name": "e2e",
    "dataset": "breast_cancer",
    "metric": "roc_auc",
    "cv": {"folds": 3, "seed": 11},
    "chunk_size": 2,
    "search": THREE_LIBRARIES,
}
THREE_LIBRARIES_TRIALS = 30


def three_libraries_reference() -> dict[tuple[str, ParamsKey], float]:
    """GridSearchCV's `mean_test_score` for every trial of THREE_LIBRARIES_SPEC."""
    spec = THREE_LIBRARIES_SPEC
    data = load_dataset(parse_spec(spec).dataset)
    return {
        (library, key): score
        for library, part in THREE_LIBRARIES.items()
        for key, score in gridsearch_means(
            library,
            data,
            part["fixed"],
            part["grid"],
            metric=spec["metric"],
            folds=spec["cv"]["folds"],
            seed=spec["cv"]["seed"],
        ).items()
    }


def noop_spec(name: str, n: int, sleep_s: float, **extra: Any) -> dict[str, Any]:
    """A grid of `n` noop trials on iris, each sleeping `sleep_s` (scores 0.00, 0.01, ...)."""
    return {
        "name": name,
        "dataset": "iris",
        "cv": {"folds": 2, "seed": 5},
        "search": {
            "noop": {
                "fixed": {"sleep_s": sleep_s},
                "grid": {"score": [round(0.01 * i, 2) for i in range(n)]},
            }
        },
        **extra,
    }
