"""LightGBM's scikit-learn estimators (LGBMClassifier, LGBMRegressor)."""

from __future__ import annotations

from tunefleet_contract.rules import (
    FRACTION,
    FREE_STR,
    NONNEG,
    RATE,
    SEED,
    LibraryCatalogue,
    ParamRule,
    choice_rule,
    float_rule,
    int_rule,
)

CATALOGUE = LibraryCatalogue(
    name="lightgbm",
    thread_param="n_jobs",
    platform=frozenset(
        {
            "num_threads",
            "nthread",
            "verbose",
            "verbosity",
            "output_model",
            "device_type",
            "device",
            "saved_feature_importance_type",
            "callbacks",
        }
    ),
    rounds=("n_estimators",),
    # DART drops and rescales earlier trees as it adds new ones.
    cut_not_exact={"boosting_type": frozenset({"dart"})},
    params={
        "boosting_type": choice_rule("gbdt", "dart", "rf"),
        "num_leaves": int_rule(2, 131_072),
        "max_depth": int_rule(-1, 64),
        "learning_rate": RATE,
        "n_estimators": int_rule(1, 100_000),
        "subsample_for_bin": int_rule(1),
        "objective": FREE_STR,
        "class_weight": choice_rule("balanced", nullable=True),
        "min_split_gain": NONNEG,
        "min_child_weight": NONNEG,
        "min_child_samples": int_rule(0),
        "subsample": FRACTION,
        "subsample_freq": int_rule(0),
        "colsample_bytree": FRACTION,
        "reg_alpha": NONNEG,
        "reg_lambda": NONNEG,
        "max_bin": int_rule(2, 65_536),
        "min_data_in_bin": int_rule(1),
        "extra_trees": ParamRule(bool),
        "path_smooth": NONNEG,
        "max_delta_step": float_rule(),
        "random_state": SEED,
        "n_jobs": int_rule(1),
    },
)
