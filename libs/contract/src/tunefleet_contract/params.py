"""What each library's parameters may be, checked before anything is published.

A static catalogue rather than the estimators' own `get_params()`: the CLI and the publisher must
reject a mistyped name or a value of the wrong type without importing three ML libraries, and
`get_params()` defaults (often ``None``) say nothing about the accepted type.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "LIBRARIES",
    "THREAD_PARAM",
    "ParamError",
    "ParamRule",
    "check_param",
]

Scalar = int | float | str | bool | None


class ParamError(ValueError):
    """A parameter name or value that the library would not accept."""


@dataclass(frozen=True)
class ParamRule:
    kind: type  # int, float, str or bool
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    low_open: bool = False

    def check(self, name: str, value: Scalar) -> None:
        if value is None:
            if self.nullable:
                return
            raise ParamError(f"{name}: null is not allowed")
        # bool is a subclass of int in Python; a JSON `true` is never a number here.
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ParamError(f"{name}: expected true or false, got {value!r}")
            return
        if self.kind is str:
            if not isinstance(value, str):
                raise ParamError(f"{name}: expected a string, got {value!r}")
            if self.choices is not None and value not in self.choices:
                raise ParamError(f"{name}: {value!r} is not one of {', '.join(self.choices)}")
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamError(f"{name}: expected {self.kind.__name__}, got {value!r}")
        if self.kind is int and not isinstance(value, int):
            raise ParamError(f"{name}: expected an integer, got {value!r}")
        if not math.isfinite(value):
            raise ParamError(f"{name}: {value!r} is not a finite number")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            bound = ">" if self.low_open else ">="
            raise ParamError(f"{name}: {value!r} must be {bound} {self.low:g}")
        if self.high is not None and value > self.high:
            raise ParamError(f"{name}: {value!r} must be <= {self.high:g}")


def _int(
    low: float | None = None, high: float | None = None, *, nullable: bool = False
) -> ParamRule:
    return ParamRule(int, low, high, nullable=nullable)


def _float(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    nullable: bool = False,
) -> ParamRule:
    return ParamRule(float, low, high, low_open=low_open, nullable=nullable)


def _choice(*choices: str, nullable: bool = False) -> ParamRule:
    return ParamRule(str, choices=choices, nullable=nullable)


_FRACTION = _float(0.0, 1.0, low_open=True)
_RATE = _float(0.0, low_open=True)
_NONNEG = _float(0.0)
_SEED = _int(0, 2**31 - 1)
_FREE_STR = ParamRule(str)

# The parameter each library takes its thread count from. The platform sets it from the worker's
# TUNEFLEET_WORKER_THREADS; a spec may ask for more, up to the worker's limit.
THREAD_PARAM: Mapping[str, str] = {
    "xgboost": "n_jobs",
    "lightgbm": "n_jobs",
    "catboost": "thread_count",
    "noop": "n_jobs",
}

# Names the platform controls: threads under another name, logging and anything writing files.
_PLATFORM: Mapping[str, frozenset[str]] = {
    "xgboost": frozenset({"nthread", "verbosity", "device", "callbacks", "early_stopping_rounds"}),
    "lightgbm": frozenset(
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
    "catboost": frozenset(
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
    "noop": frozenset(),
}

LIBRARIES: Mapping[str, Mapping[str, ParamRule]] = {
    "xgboost": {
        "n_estimators": _int(1, 100_000),
        "max_depth": _int(0, 64, nullable=True),
        "max_leaves": _int(0, 2**31 - 1),
        "max_bin": _int(2, 65_536),
        "grow_policy": _choice("depthwise", "lossguide"),
        "learning_rate": _RATE,
        "booster": _choice("gbtree", "gblinear", "dart"),
        "tree_method": _choice("auto", "exact", "approx", "hist"),
        "gamma": _NONNEG,
        "min_child_weight": _NONNEG,
        "max_delta_step": _NONNEG,
        "subsample": _FRACTION,
        "sampling_method": _choice("uniform", "gradient_based"),
        "colsample_bytree": _FRACTION,
        "colsample_bylevel": _FRACTION,
        "colsample_bynode": _FRACTION,
        "reg_alpha": _NONNEG,
        "reg_lambda": _NONNEG,
        "scale_pos_weight": _RATE,
        "base_score": _float(nullable=True),
        "num_parallel_tree": _int(1, 10_000),
        "max_cat_to_onehot": _int(1),
        "objective": _FREE_STR,
        "eval_metric": _FREE_STR,
        "random_state": _SEED,
        "n_jobs": _int(1),
    },
    "lightgbm": {
        "boosting_type": _choice("gbdt", "dart", "rf"),
        "num_leaves": _int(2, 131_072),
        "max_depth": _int(-1, 64),
        "learning_rate": _RATE,
        "n_estimators": _int(1, 100_000),
        "subsample_for_bin": _int(1),
        "objective": _FREE_STR,
        "class_weight": _choice("balanced", nullable=True),
        "min_split_gain": _NONNEG,
        "min_child_weight": _NONNEG,
        "min_child_samples": _int(0),
        "subsample": _FRACTION,
        "subsample_freq": _int(0),
        "colsample_bytree": _FRACTION,
        "reg_alpha": _NONNEG,
        "reg_lambda": _NONNEG,
        "max_bin": _int(2, 65_536),
        "min_data_in_bin": _int(1),
        "extra_trees": ParamRule(bool),
        "path_smooth": _NONNEG,
        "max_delta_step": _float(),
        "random_state": _SEED,
        "n_jobs": _int(1),
    },
    "catboost": {
        "iterations": _int(1, 100_000),
        "n_estimators": _int(1, 100_000),
        "learning_rate": _RATE,
        "depth": _int(1, 16),
        "max_depth": _int(1, 16),
        "l2_leaf_reg": _NONNEG,
        "border_count": _int(1, 65_535),
        "random_strength": _NONNEG,
        "bagging_temperature": _NONNEG,
        "subsample": _FRACTION,
        "rsm": _FRACTION,
        "grow_policy": _choice("SymmetricTree", "Depthwise", "Lossguide"),
        "min_data_in_leaf": _int(1),
        "max_leaves": _int(2, 64),
        "bootstrap_type": _choice("Bayesian", "Bernoulli", "MVS", "No"),
        "boosting_type": _choice("Ordered", "Plain"),
        "one_hot_max_size": _int(1, 255),
        "leaf_estimation_iterations": _int(1, 100),
        "leaf_estimation_method": _choice("Newton", "Gradient", "Exact"),
        "auto_class_weights": _choice("Balanced", "SqrtBalanced", nullable=True),
        "loss_function": _FREE_STR,
        "random_seed": _SEED,
        "thread_count": _int(1),
    },
    # A model that trains nothing: measures the pipeline's own cost, and gives fault-injection
    # tests trials of a chosen length and outcome.
    "noop": {
        "score": _float(-1e12, 1e12),
        "sleep_s": _float(0.0, 86_400.0),
        "fail": ParamRule(bool),
        "n_jobs": _int(1),
        "x": _float(nullable=True),
    },
}


def check_param(library: str, name: str, value: Scalar) -> None:
    """Raise ParamError naming the parameter unless `library` accepts `name=value`."""
    rules = LIBRARIES.get(library)
    if rules is None:
        raise ParamError(f"unknown library {library!r}; choose from {', '.join(LIBRARIES)}")
    if name in _PLATFORM[library]:
        raise ParamError(
            f"{name}: set by the platform, not by a study (threads come from "
            f"{THREAD_PARAM[library]}, capped by the worker; no output files are written)"
        )
    rule = rules.get(name)
    if rule is None:
        near = difflib.get_close_matches(name, list(rules), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ParamError(f"{name}: unknown parameter for {library}{hint}")
    rule.check(name, value)
