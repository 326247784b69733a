"""The studies the benchmarks run: one place, so the report and the code cannot drift apart."""

from __future__ import annotations

from typing import Any

N_ESTIMATORS = 50

GRIDS: dict[str, dict[str, Any]] = {
    # 48 trials per library: 2 x 3 x 2 x 2 x 2.
    "xgboost": {
        "fixed": {"n_estimators": N_ESTIMATORS},
        "grid": {
            "max_depth": [3, 5],
            "learning_rate": [0.05, 0.1, 0.3],
            "min_child_weight": [1.0, 5.0],
            "subsample": [0.8, 1.0],
            "colsample_bytree": [0.8, 1.0],
        },
    },
    "lightgbm": {
        "fixed": {"n_estimators": N_ESTIMATORS, "subsample_freq": 1},
        "grid": {
            "num_leaves": [15, 31],
            "learning_rate": [0.05, 0.1, 0.3],
            "min_child_weight": [0.001, 1.0],
            "subsample": [0.8, 1.0],
            "colsample_bytree": [0.8, 1.0],
        },
    },
    "catboost": {
        "fixed": {"iterations": N_ESTIMATORS},
        "grid": {
            "depth": [4, 6],
            "learning_rate": [0.05, 0.1, 0.3],
            "l2_leaf_reg": [1.0, 5.0],
            "rsm": [0.8, 1.0],
            "random_strength": [0.5, 1.0],
        },
    },
}

QUICK_GRIDS: dict[str, dict[str, Any]] = {
    "xgboost": {"fixed": {"n_estimators": 10}, "grid": {"max_depth": [3, 5]}},
    "lightgbm": {"fixed": {"n_estimators": 10}, "grid": {"num_leaves": [7, 15]}},
    "catboost": {"fixed": {"iterations": 10}, "grid": {"depth": [3, 4]}},
}


# The grid a user tunes in practice: an n_estimators axis (four values) and deeper trees.
# 16 trials per library, 4 families of 4: one fit per family and fold scores all four.
ROUNDS = [50, 100, 150, 200]
REALISTIC_GRIDS: dict[str, dict[str, Any]] = {
    "xgboost": {
        "fixed": {"subsample": 0.8, "colsample_bytree": 0.8},
        "grid": {"n_estimators": ROUNDS, "max_depth": [6, 8], "learning_rate": [0.05, 0.1]},
    },
    "lightgbm": {
        "fixed": {"subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8},
        "grid": {"n_estimators": ROUNDS, "num_leaves": [63, 127], "learning_rate": [0.05, 0.1]},
    },
    "catboost": {
        "fixed": {"rsm": 0.8},
        "grid": {"iterations": ROUNDS, "depth": [6, 8], "learning_rate": [0.05, 0.1]},
    },
}

QUICK_REALISTIC_GRIDS: dict[str, dict[str, Any]] = {
    "xgboost": {"fixed": {"subsample": 0.8}, "grid": {"n_estimators": [5, 10], "max_depth": [6]}},
    "lightgbm": {
        "fixed": {"subsample": 0.8, "subsample_freq": 1},
        "grid": {"n_estimators": [5, 10], "num_leaves": [63]},
    },
    "catboost": {
        "fixed": {"rsm": 0.8},
        "grid": {"iterations": [5, 10], "depth": [6], "learning_rate": [0.1]},
    },
}


def realistic_spec(quick: bool = False) -> dict[str, Any]:
    """The peers' grid: 2,000 x 20 classification, 3-fold stratified CV, accuracy."""
    return {
        **gridsearch_spec(quick),
        "name": "bench-realistic",
        "dataset": {
            "kind": "make_classification",
            "n_samples": 1000 if quick else 2000,
            "n_features": 20,
            "n_informative": 10,
            "seed": 0,
        },
        "search": QUICK_REALISTIC_GRIDS if quick else REALISTIC_GRIDS,
    }


def gridsearch_spec(quick: bool = False) -> dict[str, Any]:
    """Benchmark 1: 20,000 x 40 classification, 3-fold stratified CV, accuracy."""
    return {
        "name": "bench-vs-gridsearchcv",
        "dataset": {
            "kind": "make_classification",
            "n_samples": 3000 if quick else 20_000,
            "n_features": 20 if quick else 40,
            "n_informative": 10 if quick else 20,
            "seed": 0,
        },
        "metric": "accuracy",
        "cv": {"folds": 3, "seed": 0},
        "search": QUICK_GRIDS if quick else GRIDS,
        "chunk_size": 1,
    }


def noop_spec(n_trials: int, chunk_size: int, name: str = "bench-noop") -> dict[str, Any]:
    """The built-in no-op model: the pipeline's own cost, nothing trained."""
    return {
        "name": name,
        "dataset": "iris",
        "metric": "accuracy",
        "cv": {"folds": 3, "seed": 0},
        "search": {
            "noop": {"fixed": {"score": 0.5}, "grid": {"x": [float(i) for i in range(n_trials)]}}
        },
        "chunk_size": chunk_size,
        "allow_large": n_trials > 100_000,
    }


def seed_scale_spec() -> dict[str, Any]:
    """Benchmark 3: the seed's 26,160-point grid, sent in chunks of 6 trials (4,360 messages)."""
    return {**noop_spec(26_160, 6, name="bench-seed-scale")}


# --- adaptive search (bench.adaptive) ----------------------------------------------------------

# Two datasets: a classification of 20,000 rows (the issue's >= 20,000) and a regression.
ADAPTIVE_DATASETS: dict[str, dict[str, Any]] = {
    "classification": {
        "kind": "make_classification",
        "n_samples": 20_000,
        "n_features": 20,
        "n_informative": 10,
        "seed": 0,
    },
    "regression": {
        "kind": "make_regression",
        "n_samples": 10_000,
        "n_features": 20,
        "n_informative": 10,
        "noise": 10.0,
        "seed": 0,
    },
}
QUICK_ADAPTIVE_ROWS = 2000

# TPE on XGBoost at fixed rounds: five parameters, two of them on a log scale.
TPE_ROUNDS = 50
TPE_SPACE: dict[str, Any] = {
    "learning_rate": {"loguniform": [0.01, 0.3]},
    "max_depth": {"int": [2, 10]},
    "min_child_weight": {"loguniform": [0.5, 20.0]},
    "subsample": {"uniform": [0.5, 1.0]},
    "colsample_bytree": {"uniform": [0.5, 1.0]},
}
TPE_TRIALS, TPE_STARTUP = 30, 10

# ASHA on LightGBM with n_estimators as the resource: rungs 10, 30, 90, 270.
ASHA_FIXED: dict[str, Any] = {"subsample_freq": 1}
ASHA_SPACE: dict[str, Any] = {
    "learning_rate": {"loguniform": [0.01, 0.3]},
    "num_leaves": {"int": [8, 128]},
    "min_child_samples": {"int": [5, 100]},
    "subsample": {"uniform": [0.5, 1.0]},
    "colsample_bytree": {"uniform": [0.5, 1.0]},
}
ASHA_RUNGS = {"min_rounds": 10, "max_rounds": 270, "eta": 3}
# Evaluations in all: tunefleet's ASHA makes about 52 configurations at 10 rounds, 19 at 30, 7 at
# 90 and 3 at 270 of them (a 10-round fit costs about a tenth of a 270-round one, not 10/270:
# its fixed costs weigh).
ASHA_TRIALS = 81
REFERENCE_TRIALS = 81  # the full search: configurations drawn from the same space, at 270


def _adaptive_base(name: str, dataset: str, quick: bool) -> dict[str, Any]:
    data = dict(ADAPTIVE_DATASETS[dataset])
    if quick:
        data["n_samples"] = QUICK_ADAPTIVE_ROWS
    return {"name": f"{name}-{dataset}", "dataset": data, "cv": {"folds": 3, "seed": 0}}


def tpe_spec(dataset: str, seed: int, quick: bool = False) -> dict[str, Any]:
    """XGBoost, TPE over `TPE_SPACE`, `TPE_TRIALS` trials; `seed` seeds the sampler only (the
    folds stay the same)."""
    return {
        **_adaptive_base("bench-tpe", dataset, quick),
        "search": {
            "xgboost": {
                "fixed": {"n_estimators": 10 if quick else TPE_ROUNDS},
                "tpe": {
                    "n_trials": 8 if quick else TPE_TRIALS,
                    "n_startup": 4 if quick else TPE_STARTUP,
                    "seed": seed,
                    "space": TPE_SPACE,
                },
            }
        },
    }


def asha_spec(dataset: str, seed: int, quick: bool = False) -> dict[str, Any]:
    """LightGBM, ASHA over `ASHA_SPACE` with n_estimators as the resource."""
    rungs = {"min_rounds": 2, "max_rounds": 18, "eta": 3} if quick else ASHA_RUNGS
    return {
        **_adaptive_base("bench-asha", dataset, quick),
        "search": {
            "lightgbm": {
                "fixed": ASHA_FIXED,
                "asha": {
                    **rungs,
                    "n_trials": 13 if quick else ASHA_TRIALS,
                    "seed": seed,
                    "space": ASHA_SPACE,
                },
            }
        },
    }


def reference_spec(dataset: str, quick: bool = False) -> dict[str, Any]:
    """The full search ASHA is measured against: a random search of the same space, every
    configuration at the top rung's rounds."""
    top = 18 if quick else ASHA_RUNGS["max_rounds"]
    return {
        **_adaptive_base("bench-full", dataset, quick),
        "search": {
            "lightgbm": {
                "fixed": {**ASHA_FIXED, "n_estimators": top},
                "random": {"n_trials": 12 if quick else REFERENCE_TRIALS, "space": ASHA_SPACE},
            }
        },
    }
