from __future__ import annotations

from typing import Any

import pytest
from sklearn.model_selection import ParameterGrid
from tunefleet_contract.messages import TrialSpec
from tunefleet_contract.search import trial_id
from tunefleet_publisher.chunks import chunked, family_chunks
from tunefleet_publisher.planner import expand
from tunefleet_runtime.validation import parse_spec


@pytest.mark.parametrize(
    "grid",
    [
        {"max_depth": [2, 3, 4], "learning_rate": [0.1, 0.3], "subsample": [0.5, 1.0]},
        [{"max_depth": [2, 3]}, {"learning_rate": [0.1], "gamma": [0.0, 1.0]}],
        {},
    ],
)
def test_expansion_follows_parameter_grid(grid: Any) -> None:
    fixed = {"n_estimators": 10}
    study = parse_spec({"dataset": "iris", "search": {"xgboost": {"fixed": fixed, "grid": grid}}})
    trials = list(expand(study, "s"))
    expected = [{**fixed, **point} for point in ParameterGrid(grid)]
    assert [t.params for t in trials] == expected
    assert study.n_trials() == len(expected)


def test_trial_ids_deterministic_and_order_independent() -> None:
    a = trial_id("s", "xgboost", {"max_depth": 2, "learning_rate": 0.1})
    b = trial_id("s", "xgboost", {"learning_rate": 0.1, "max_depth": 2})
    assert a == b and len(a) == 24
    assert trial_id("other", "xgboost", {"max_depth": 2, "learning_rate": 0.1}) != a
    assert trial_id("s", "lightgbm", {"max_depth": 2, "learning_rate": 0.1}) != a
    # 1 and 1.0 are different parameter values for a library (int vs float).
    assert trial_id("s", "noop", {"x": 1}) != trial_id("s", "noop", {"x": 1.5})


def test_same_point_in_two_grids_is_one_trial() -> None:
    study = parse_spec(
        {
            "dataset": "iris",
            "search": {"xgboost": {"grid": [{"max_depth": [2]}, {"max_depth": [2, 3]}]}},
        }
    )
    assert [t.params for t in expand(study, "s")] == [{"max_depth": 2}, {"max_depth": 3}]


def test_several_libraries_get_distinct_ids() -> None:
    study = parse_spec(
        {
            "dataset": "iris",
            "search": {
                "xgboost": {"grid": {"max_depth": [2, 3]}},
                "lightgbm": {"grid": {"max_depth": [2, 3]}},
            },
        }
    )
    ids = [t.trial_id for t in expand(study, "s")]
    assert len(ids) == len(set(ids)) == 4


def test_chunked() -> None:
    assert list(chunked(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked(iter([]), 3)) == []


def _trials(library: str, fixed: dict[str, Any], grid: dict[str, list[Any]]) -> list[TrialSpec]:
    study = parse_spec({"dataset": "iris", "search": {library: {"fixed": fixed, "grid": grid}}})
    return list(expand(study, "s"))


def test_family_chunks_never_split_a_family() -> None:
    trials = _trials("xgboost", {}, {"max_depth": [1, 2, 3], "n_estimators": [10, 20, 30, 40]})
    assert [len(c) for c in family_chunks(trials, 1)] == [4, 4, 4]
    assert [len(c) for c in family_chunks(trials, 6)] == [4, 4, 4]
    assert [len(c) for c in family_chunks(trials, 8)] == [8, 4]
    lone = _trials("noop", {}, {"x": [float(i) for i in range(7)]})
    assert [len(c) for c in family_chunks(lone, 3)] == [3, 3, 1]
    assert list(family_chunks([], 3)) == []
