"""Random search: seeded, reproducible, conditional, validated against the params catalogue."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sklearn.model_selection import ParameterGrid
from tunefleet_contract.params import check_param
from tunefleet_contract.search import trial_id
from tunefleet_contract.spec import SpecError
from tunefleet_publisher.planner import expand
from tunefleet_runtime.validation import parse_spec, scoring_key

SPACE: dict[str, Any] = {
    "learning_rate": {"loguniform": [0.01, 0.3]},
    "max_depth": {"int": [2, 8]},
    "subsample": {"uniform": [0.5, 1.0]},
    "grow_policy": {"choice": ["depthwise", "lossguide"]},
    "max_leaves": {"int": [4, 64], "log": True, "when": {"grow_policy": "lossguide"}},
}


def random_spec(seed: int = 7, n: int = 40, **library: Any) -> dict[str, Any]:
    part = {"fixed": {"n_estimators": 10}, "random": {"n_trials": n, "space": SPACE}}
    part.update(library)
    return {"name": "rs", "dataset": "iris", "cv": {"seed": seed}, "search": {"xgboost": part}}


def rejected(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return str(info.value)


def test_same_seed_samples_the_same_trials() -> None:
    first = parse_spec(random_spec())
    again = parse_spec(random_spec())
    a, b = list(expand(first, first.study_id())), list(expand(again, again.study_id()))
    assert len(a) == 40
    assert [t.params for t in a] == [t.params for t in b]
    assert [t.trial_id for t in a] == [t.trial_id for t in b]
    other = parse_spec(random_spec(seed=8))
    assert [t.params for t in expand(other, other.study_id())] != [t.params for t in a]


def test_samples_respect_distributions_conditions_and_catalogue() -> None:
    study = parse_spec(random_spec(n=200))
    trials = list(expand(study, study.study_id()))
    assert len({t.trial_id for t in trials}) == 200
    for t in trials:
        p = t.params
        assert p["n_estimators"] == 10
        assert 0.01 <= p["learning_rate"] <= 0.3  # type: ignore[operator]
        assert isinstance(p["max_depth"], int) and 2 <= p["max_depth"] <= 8
        assert 0.5 <= p["subsample"] <= 1.0  # type: ignore[operator]
        assert ("max_leaves" in p) == (p["grow_policy"] == "lossguide")
        for name, value in p.items():
            check_param("xgboost", name, value)
        assert t.trial_id == trial_id(study.study_id(), "xgboost", p, scoring_key(study))
    # Both branches of the condition were drawn, and the log-int covers its range.
    leaves = [t.params["max_leaves"] for t in trials if "max_leaves" in t.params]
    assert 0 < len(leaves) < 200
    assert min(leaves) < 10 and max(leaves) > 40  # type: ignore[type-var]
    rates = sorted(float(t.params["learning_rate"]) for t in trials)  # type: ignore[arg-type]
    # log-uniform: about half the draws fall below the geometric mean of the bounds
    below = sum(r < math.sqrt(0.01 * 0.3) for r in rates)
    assert 60 < below < 140


def test_adding_a_library_keeps_the_other_librarys_draws() -> None:
    alone = parse_spec(random_spec())
    both_data = random_spec()
    both_data["search"]["noop"] = {"random": {"n_trials": 3, "space": {"x": {"uniform": [0, 1]}}}}
    both = parse_spec(both_data)
    params = [t.params for t in expand(both, both.study_id()) if t.library == "xgboost"]
    assert params == [t.params for t in expand(alone, alone.study_id())]


def test_explicit_seed_overrides_the_study_seed() -> None:
    data = random_spec(seed=1)
    data["search"]["xgboost"]["random"]["seed"] = 99
    a = parse_spec(data)
    data2 = random_spec(seed=2)
    data2["search"]["xgboost"]["random"]["seed"] = 99
    b = parse_spec(data2)
    assert [t.params for t in expand(a, "s")] == [t.params for t in expand(b, "s")]


def test_grid_keeps_parameter_grid_semantics_next_to_random() -> None:
    grid = [{"max_depth": [2, 3], "learning_rate": [0.1, 0.2]}, {"booster": ["gblinear"]}]
    study = parse_spec(random_spec(n=5, grid=grid))
    trials = list(expand(study, "s"))
    expected = [{"n_estimators": 10, **p} for p in ParameterGrid(grid)]
    assert [t.params for t in trials[: len(expected)]] == expected
    assert len(trials) == len(expected) + 5
    assert study.n_trials() == len(expected) + 5


def test_random_only_library_has_no_fixed_only_trial() -> None:
    study = parse_spec(random_spec(n=3))
    assert len(list(expand(study, "s"))) == 3
    # Without `random`, an empty grid is still the one trial of the fixed parameters.
    plain = parse_spec({"dataset": "iris", "search": {"noop": {"fixed": {"score": 0.5}}}})
    assert [t.params for t in expand(plain, "s")] == [{"score": 0.5}]


def test_small_discrete_space_yields_distinct_points_only() -> None:
    data = {
        "dataset": "iris",
        "search": {
            "noop": {
                "random": {
                    "n_trials": 6,
                    "space": {
                        "score": {"choice": [0.1, 0.2, 0.3]},
                        "fail": {"choice": [True, False]},
                    },
                }
            }
        },
    }
    trials = list(expand(parse_spec(data), "s"))
    assert len(trials) == 6
    assert len({(t.params["score"], t.params["fail"]) for t in trials}) == 6


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"max_depth": {"uniform": [2, 6]}}, "max_depth: an integer parameter; use int"),
        ({"subsample": {"uniform": [0, 1]}}, "subsample: 0.0 must be > 0"),
        ({"learning_rate": {"loguniform": [0, 1]}}, "loguniform: low must be > 0"),
        ({"learning_rate": {"uniform": [0.3, 0.1]}}, "low 0.3 is above high 0.1"),
        ({"max_depth": {"int": [2, 3]}}, "5 is more than the at most 2 distinct points"),
        ({"booster": {"choice": ["gbtree", "nope"]}}, "'nope' is not one of"),
        ({"max_depth": {"int": [2, 9], "choice": [3]}}, "give exactly one of"),
        ({"max_depth": {"int": [2, 9], "when": {"booster": "dart"}}}, "neither in the space"),
        ({"max_dept": {"int": [2, 9]}}, "did you mean 'max_depth'"),
        ({"n_estimators": {"int": [5, 9]}}, "n_estimators: also given in fixed"),
        ({"learning_rate": {"uniform": [0.1, 0.2], "log": True}}, "log: true applies to int"),
        (
            {
                "max_depth": {"int": [2, 9], "when": {"max_leaves": 4}},
                "max_leaves": {"int": [2, 9], "when": {"max_depth": 4}},
            },
            "conditions form a cycle",
        ),
    ],
)
def test_bad_spaces_are_refused_with_the_field_named(space: dict[str, Any], expected: str) -> None:
    data = random_spec(n=5)
    data["search"]["xgboost"]["random"]["space"] = space
    assert expected in rejected(data)


def test_draws_do_not_depend_on_the_process_hash_seed() -> None:
    # Two interpreters with different string-hash seeds (as two publisher replicas would
    # have) sample the same trials: the RNG is seeded from a digest, not from hash().
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, sys; from tunefleet_runtime.validation import parse_spec; "
        "from tunefleet_publisher.planner import expand; "
        "s = parse_spec(json.loads(sys.argv[1])); "
        "print(json.dumps([t.trial_id for t in expand(s, s.study_id())]))"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run(
            [sys.executable, "-c", code, json.dumps(random_spec())],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        outputs.append(json.loads(run.stdout))
    assert len(outputs[0]) == 40 and outputs[0] == outputs[1]
