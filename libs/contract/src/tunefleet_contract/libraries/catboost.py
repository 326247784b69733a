"""CatBoost's scikit-learn estimators (CatBoostClassifier, CatBoostRegressor)."""

from __future__ import annotations

from tunefleet_contract.rules import (
    FRACTION,
    FREE_STR,
    NONNEG,
    RATE,
    SEED,
    LibraryCatalogue,
    choice_rule,
    int_rule,
)

CATALOGUE = LibraryCatalogue(
    name="catboost",
    thread_param="thread_count",
    platform=frozenset(
        {
            "n_jobs",
            "train_dir",
            "allow_writing_files",
            "verbose",
            "silent",
            "logging_level",
            "save_snapshot",
            "snapshot_file",
            "snapshot_interval",
            "task_type",
            "devices",
            "metric_period",
            "used_ram_limit",
            "model_shrink_rate",
        }
    ),
    rounds=("iterations", "n_estimators"),
    # Without a learning_rate CatBoost derives one from the iterations.
    cut_needs=("learning_rate",),
    params={
        "iterations": int_rule(1, 100_000),
        "n_estimators": int_rule(1, 100_000),
        "learning_rate": RATE,
        "depth": int_rule(1, 16),
        "max_depth": int_rule(1, 16),
        "l2_leaf_reg": NONNEG,
        "border_count": int_rule(1, 65_535),
        "random_strength": NONNEG,
        "bagging_temperature": NONNEG,
        "subsample": FRACTION,
        "rsm": FRACTION,
        "grow_policy": choice_rule("SymmetricTree", "Depthwise", "Lossguide"),
        "min_data_in_leaf": int_rule(1),
        "max_leaves": int_rule(2, 64),
        "bootstrap_type": choice_rule("Bayesian", "Bernoulli", "MVS", "No"),
        "boosting_type": choice_rule("Ordered", "Plain"),
        "one_hot_max_size": int_rule(1, 255),
        "leaf_estimation_iterations": int_rule(1, 100),
        "leaf_estimation_method": choice_rule("Newton", "Gradient", "Exact"),
        "auto_class_weights": choice_rule("Balanced", "SqrtBalanced", nullable=True),
        "loss_function": FREE_STR,
        "random_seed": SEED,
        "thread_count": int_rule(1),
    },
)
