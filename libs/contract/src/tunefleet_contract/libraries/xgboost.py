"""XGBoost's scikit-learn estimators (XGBClassifier, XGBRegressor)."""

from __future__ import annotations

from tunefleet_contract.rules import (
    FRACTION,
    FREE_STR,
    NONNEG,
    RATE,
    SEED,
    LibraryCatalogue,
    choice_rule,
    float_rule,
    int_rule,
)

CATALOGUE = LibraryCatalogue(
    name="xgboost",
    thread_param="n_jobs",
    platform=frozenset({"nthread", "verbosity", "device", "callbacks", "early_stopping_rounds"}),
    rounds=("n_estimators",),
    # DART drops and rescales earlier trees as it adds new ones; gblinear has no trees to cut.
    cut_not_exact={"booster": frozenset({"dart", "gblinear"})},
    params={
        "n_estimators": int_rule(1, 100_000),
        "max_depth": int_rule(0, 64, nullable=True),
        "max_leaves": int_rule(0, 2**31 - 1),
        "max_bin": int_rule(2, 65_536),
        "grow_policy": choice_rule("depthwise", "lossguide"),
        "learning_rate": RATE,
        "booster": choice_rule("gbtree", "gblinear", "dart"),
        "tree_method": choice_rule("auto", "exact", "approx", "hist"),
        "gamma": NONNEG,
        "min_child_weight": NONNEG,
        "max_delta_step": NONNEG,
        "subsample": FRACTION,
        "sampling_method": choice_rule("uniform", "gradient_based"),
        "colsample_bytree": FRACTION,
        "colsample_bylevel": FRACTION,
        "colsample_bynode": FRACTION,
        "reg_alpha": NONNEG,
        "reg_lambda": NONNEG,
        "scale_pos_weight": RATE,
        "base_score": float_rule(nullable=True),
        "num_parallel_tree": int_rule(1, 10_000),
        "max_cat_to_onehot": int_rule(1),
        "objective": FREE_STR,
        "eval_metric": FREE_STR,
        "random_state": SEED,
        "n_jobs": int_rule(1),
    },
)
