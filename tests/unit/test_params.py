from __future__ import annotations

import pytest
from tunefleet_contract.params import LIBRARIES, THREAD_PARAM, ParamError, check_param


@pytest.mark.parametrize(
    ("library", "name", "value"),
    [
        ("xgboost", "max_depth", 3),
        ("xgboost", "learning_rate", 1),  # an int is a fine float
        ("lightgbm", "class_weight", None),
        ("lightgbm", "extra_trees", True),
        ("catboost", "grow_policy", "Depthwise"),
        ("noop", "score", 0.5),
    ],
)
def test_accepted(library: str, name: str, value: object) -> None:
    check_param(library, name, value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("library", "name", "value", "message"),
    [
        ("xgboost", "max_depth", True, "expected int"),
        ("xgboost", "max_depth", 2.5, "expected an integer"),
        ("xgboost", "subsample", 0.0, "must be > 0"),
        ("xgboost", "subsample", 1.5, "must be <= 1"),
        ("xgboost", "learning_rate", float("nan"), "not a finite number"),
        ("xgboost", "booster", "forest", "not one of gbtree, gblinear, dart"),
        ("xgboost", "nthread", 4, "set by the platform"),
        ("lightgbm", "output_model", "/etc/x", "set by the platform"),
        ("catboost", "colsample", 0.5, "unknown parameter for catboost"),
        ("sklearn", "C", 1.0, "unknown library"),
        ("xgboost", "max_depth", None, None),
    ],
)
def test_refused(library: str, name: str, value: object, message: str | None) -> None:
    if message is None:  # nullable: accepted
        check_param(library, name, value)  # type: ignore[arg-type]
        return
    with pytest.raises(ParamError, match=message):
        check_param(library, name, value)  # type: ignore[arg-type]


def test_every_library_has_its_thread_parameter() -> None:
    for library, rules in LIBRARIES.items():
        assert THREAD_PARAM[library] in rules
