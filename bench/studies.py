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

# ASHA on LightGBM with n_estimators as the resource: rungs 10, 30, 90, 270. Its space is a
# grid's (every parameter a `choice`), and the full search is that grid at the top rung: ASHA
# draws its configurations from the points the full search scores, so the gap says what early
# stopping lost, not which random points each side happened to draw.
ASHA_FIXED: dict[str, Any] = {"subsample_freq": 1}
ASHA_GRID: dict[str, list[Any]] = {
    "learning_rate": [0.02, 0.05, 0.1, 0.2],
    "num_leaves": [15, 31, 63, 127],
    "min_child_samples": [10, 40],
    "subsample": [0.7, 1.0],
    "colsample_bytree": [0.7, 1.0],
}
QUICK_ASHA_GRID: dict[str, list[Any]] = {"learning_rate": [0.05, 0.2], "num_leaves": [7, 31]}
ASHA_RUNGS = {"min_rounds": 10, "max_rounds": 270, "eta": 3}
# Evaluations in all, of the grid's 128 points: about 60 configurations at 10 rounds, 25 at 30,
# 10 at 90, 5 at 270 (at 10 rounds a fit's fixed costs weigh: about 0.11 of a 270-round fit).
ASHA_TRIALS = 100
# As many trials in flight as workers (and as the peers' n_jobs), as docs/spec.md advises.
MAX_IN_FLIGHT = 2


def asha_space(quick: bool = False) -> dict[str, Any]:
    grid = QUICK_ASHA_GRID if quick else ASHA_GRID
    return {name: {"choice": values} for name, values in grid.items()}


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
                    "max_in_flight": MAX_IN_FLIGHT,
                    "n_trials": 8 if quick else TPE_TRIALS,
                    "n_startup": 4 if quick else TPE_STARTUP,
                    "seed": seed,
                    "space": TPE_SPACE,
                },
            }
        },
    }


def asha_spec(dataset: str, seed: int, quick: bool = False) -> dict[str, Any]:
    """LightGBM, ASHA over the grid's space with n_estimators as the resource."""
    rungs = {"min_rounds": 2, "max_rounds": 18, "eta": 3} if quick else ASHA_RUNGS
    return {
        **_adaptive_base("bench-asha", dataset, quick),
        "search": {
            "lightgbm": {
                "fixed": ASHA_FIXED,
                "asha": {
                    **rungs,
                    "max_in_flight": MAX_IN_FLIGHT,
                    "n_trials": 4 if quick else ASHA_TRIALS,
                    "seed": seed,
                    "space": asha_space(quick),
                },
            }
        },
    }


def reference_spec(dataset: str, quick: bool = False) -> dict[str, Any]:
    """The full search ASHA is measured against: the whole grid ASHA draws from, every point at
    the top rung's rounds."""
    top = 18 if quick else ASHA_RUNGS["max_rounds"]
    return {
        **_adaptive_base("bench-full", dataset, quick),
        "search": {
            "lightgbm": {
                "fixed": {**ASHA_FIXED, "n_estimators": top},
                "grid": QUICK_ASHA_GRID if quick else ASHA_GRID,
            }
        },
    }


# --- early stopping (bench.early_stopping) -----------------------------------------------------

# The adaptive benchmark's two datasets, each scored by a metric whose value the libraries' own
# evaluation metrics give exactly (accuracy = 1 - `error` / `binary_error`, the negated RMSE =
# -`rmse`, both as means over the folds), so that `xgb.cv`'s and `lgb.cv`'s best mean is the
# scikit-learn score of the peer's best trial, on the same scale as tunefleet's.
ES_METRICS = {"classification": "accuracy", "regression": "neg_root_mean_squared_error"}
ES_LIBRARIES = ("xgboost", "lightgbm")
# A fixed learning rate, a generous round limit, and the rounds left to the validation curve:
# how gradient boosting is tuned in practice (issue 25).
ES_FIXED: dict[str, dict[str, Any]] = {
    "xgboost": {"learning_rate": 0.1},
    # subsample_freq 1: LightGBM bags rows only where it is set.
    "lightgbm": {"learning_rate": 0.1, "subsample_freq": 1},
}
ES_SPACE: dict[str, dict[str, Any]] = {
    "xgboost": {
        "max_depth": {"int": [3, 10]},
        "min_child_weight": {"loguniform": [0.5, 20.0]},
        "subsample": {"uniform": [0.5, 1.0]},
        "colsample_bytree": {"uniform": [0.5, 1.0]},
    },
    "lightgbm": {
        "num_leaves": {"int": [7, 255]},
        "min_child_samples": {"int": [5, 100]},
        "subsample": {"uniform": [0.5, 1.0]},
        "colsample_bytree": {"uniform": [0.5, 1.0]},
    },
}
ES_TRIALS = 24
ES_PATIENCE = 20
# The round limit per dataset, chosen before the measured run from where the validation curves
# peak at learning rate 0.1 (XGBoost, 6 of seed 0's configurations, `xgb.cv` with patience 50,
# 2026-12-08): the classification's best rounds 247 to 853, the regression's 684 to 1852. A
# limit above the latest peak, so that the curves, not the limit, choose the rounds
# (docs/benchmarks.md, "Early stopping").
ES_MAX_ROUNDS = {"classification": 1000, "regression": 2000}
# docs/spec.md's example of the median rule; Optuna's side gets the same warm-up and start.
ES_MEDIAN: dict[str, Any] = {"warmup": 10, "after_trials": 5, "rounds": 3}
# The grid the early stopping replaces: n_estimators over the same range in 10 equal steps.
ES_STEPS = 10

QUICK_ES_TRIALS = 6
QUICK_ES_STOP: dict[str, Any] = {"rounds": 5, "max_rounds": 60}
QUICK_ES_MEDIAN: dict[str, Any] = {"warmup": 5, "after_trials": 2, "rounds": 2}
QUICK_ES_ROUNDS = [20, 40, 60]


def es_spec(
    dataset: str,
    seed: int,
    quick: bool = False,
    median: bool = False,
    library: str = "xgboost",
    n_trials: int | None = None,
) -> dict[str, Any]:
    """The library at a fixed learning rate, a random search of its `ES_SPACE` (`n_trials`
    configurations; None: `ES_TRIALS`), rounds chosen by early stopping (with the median rule
    across trials where `median`); `seed` seeds the random search only (the folds stay the
    same)."""
    stop: dict[str, Any] = (
        dict(QUICK_ES_STOP)
        if quick
        else {"rounds": ES_PATIENCE, "max_rounds": ES_MAX_ROUNDS[dataset]}
    )
    if median:
        stop["median"] = QUICK_ES_MEDIAN if quick else ES_MEDIAN
    return {
        **_adaptive_base("bench-es" + ("-median" if median else ""), dataset, quick),
        "metric": ES_METRICS[dataset],
        "search": {
            library: {
                "early_stopping": stop,
                "fixed": ES_FIXED[library],
                "random": {
                    "n_trials": n_trials or (QUICK_ES_TRIALS if quick else ES_TRIALS),
                    "seed": seed,
                    "space": ES_SPACE[library],
                },
            }
        },
    }


def es_rounds(dataset: str, quick: bool = False) -> list[int]:
    """The `n_estimators` grid that side (1) crosses every configuration with: the early
    stopping's range, in `ES_STEPS` equal steps."""
    if quick:
        return QUICK_ES_ROUNDS
    limit = ES_MAX_ROUNDS[dataset]
    return list(range(limit // ES_STEPS, limit + 1, limit // ES_STEPS))
