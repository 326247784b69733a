"""The quasi-random (Sobol') search, added as one module of tunefleet_contract.search.kinds: a
spec takes it, the planner plans it, the plan records it, and the read side names it, with
nothing else changed."""

from __future__ import annotations

from typing import Any

import pytest
from tunefleet_contract.messages import StudyRequest
from tunefleet_contract.params import check_param
from tunefleet_contract.search import search_kinds
from tunefleet_contract.search.kinds.sobol import SobolSpec
from tunefleet_contract.search.views import library_strategy
from tunefleet_contract.spec import SpecError
from tunefleet_publisher.planner import expand, plan
from tunefleet_runtime.records import StudyRecord
from tunefleet_runtime.store import study_status
from tunefleet_runtime.store.memory import MemoryStore
from tunefleet_runtime.validation import parse_spec

SPACE: dict[str, Any] = {
    "learning_rate": {"loguniform": [0.01, 0.3]},
    "subsample": {"uniform": [0.5, 1.0]},
    "grow_policy": {"choice": ["depthwise", "lossguide"]},
    "max_leaves": {"int": [4, 64], "when": {"grow_policy": "lossguide"}},
}


def study(n: int = 16, seed: int = 7, **part: Any) -> dict[str, Any]:
    section = {"fixed": {"n_estimators": 10}, "sobol": {"n_trials": n, "space": SPACE}, **part}
    return {"name": "qmc", "dataset": "iris", "cv": {"seed": seed}, "search": {"xgboost": section}}


def test_it_is_found_by_the_plugin_mechanism_after_random_before_adaptive() -> None:
    kinds = list(search_kinds())
    assert kinds.index("random") < kinds.index("sobol") < kinds.index("tpe")
    assert search_kinds()["sobol"].spec is SobolSpec
    part = parse_spec(study()).search["xgboost"]
    assert [s.key for s in part.searches()] == ["sobol"] and part.adaptive is None
    assert library_strategy(part) == "sobol"


def test_it_decides_n_distinct_seeded_points_of_the_space_up_front() -> None:
    spec = parse_spec(study(n=40))
    trials = list(expand(spec, spec.study_id()))
    assert len({t.trial_id for t in trials}) == 40
    assert {t.search for t in trials} == {"sobol"} and {t.rung for t in trials} == {None}
    for t in trials:
        assert t.params["n_estimators"] == 10
        assert 0.01 <= t.params["learning_rate"] <= 0.3  # type: ignore[operator]
        assert ("max_leaves" in t.params) == (t.params["grow_policy"] == "lossguide")
        for name, value in t.params.items():
            check_param("xgboost", name, value)
    again = parse_spec(study(n=40))
    assert [t.trial_id for t in expand(again, again.study_id())] == [t.trial_id for t in trials]
    other = parse_spec(study(n=40, seed=8))
    assert [t.params for t in expand(other, other.study_id())] != [t.params for t in trials]


def test_its_points_cover_the_space_evenly() -> None:
    # 16 points in two dimensions: a Sobol' block of 2^4 puts one point in each cell of a 4x4
    # partition of the unit square, which independent draws almost never do.
    space = {"score": {"uniform": [0.0, 1.0]}, "x": {"uniform": [0.0, 1.0]}}
    spec = parse_spec(
        {"dataset": "iris", "search": {"noop": {"sobol": {"n_trials": 16, "space": space}}}}
    )
    points = [(float(t.params["score"]), float(t.params["x"])) for t in expand(spec, "s")]  # type: ignore[arg-type]
    assert len({(int(a * 4), int(b * 4)) for a, b in points}) == 16
    # ... and in each of the 16 stripes along either axis.
    assert len({int(a * 16) for a, _ in points}) == len({int(b * 16) for _, b in points}) == 16


def test_a_grid_point_is_the_grids_and_a_small_space_yields_distinct_points() -> None:
    data = {
        "dataset": "iris",
        "search": {
            "noop": {
                "grid": {"score": [0.1]},
                "sobol": {
                    "n_trials": 5,
                    "space": {"score": {"choice": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}},
                },
            }
        },
    }
    trials = list(expand(parse_spec(data), "s"))
    assert [t.search for t in trials] == ["grid"] + ["sobol"] * 5
    assert sorted(t.params["score"] for t in trials[1:]) == [0.2, 0.3, 0.4, 0.5, 0.6]  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"max_depth": {"uniform": [2, 6]}}, "xgboost.sobol.space.max_depth: an integer parameter"),
        ({"max_depth": {"int": [2, 3]}}, "xgboost.sobol.n_trials: 16 is more than the at most 2"),
    ],
)
def test_a_bad_section_is_refused_with_the_field_named(
    space: dict[str, Any], expected: str
) -> None:
    data = study()
    data["search"]["xgboost"]["sobol"]["space"] = space
    with pytest.raises(SpecError, match=expected):
        parse_spec(data)


def test_the_planner_publishes_it_and_the_read_side_names_it() -> None:
    spec = parse_spec(study(n=4))
    request = StudyRequest(study_id=spec.study_id(), spec=spec, submitted_at=1.0)
    decided = plan(request, {}, 0)
    assert decided.n_trials == 4 and not decided.adaptive
    assert sum(len(m.trials) for m in decided.messages()) == 4
    store = MemoryStore()
    store.put_study(StudyRecord(request.study_id, spec, n_trials=4, revision=0, submitted_at=1.0))
    status = study_status(store, request.study_id)
    assert status is not None
    (xgb,) = status.searches
    assert (xgb.strategy, xgb.adaptive) == ("sobol", None)
