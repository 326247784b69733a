"""The planner decides what it decided before the search package was its home: for every
example spec and a study mixing every search kind, the same study id, the same trials (ids and
parameters) in the same order, up front and through TPE and ASHA runs with one worker and with
results coming back last-in first-out. The expected digests were made by main at 672c610."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
from tunefleet_contract.messages import StudyRequest, TrialSpec
from tunefleet_contract.search import outcome_of
from tunefleet_contract.spec import StudySpec
from tunefleet_publisher.planner import decide, expand
from tunefleet_runtime.validation import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
EXPECTED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data/decisions_672c610.json").read_text()
)
SPACE = {
    "learning_rate": {"loguniform": [0.01, 0.3]},
    "max_depth": {"int": [2, 8]},
    "subsample": {"uniform": [0.5, 1.0]},
    "grow_policy": {"choice": ["depthwise", "lossguide"]},
    "max_leaves": {"int": [4, 64], "log": True, "when": {"grow_policy": "lossguide"}},
}
MIXED = {
    "name": "mixed",
    "dataset": "iris",
    "cv": {"seed": 3},
    "search": {
        "xgboost": {
            "fixed": {"n_estimators": 10},
            "grid": [{"max_depth": [2, 3]}, {"max_depth": [3, 4]}],
            "random": {"n_trials": 30, "space": SPACE},
            "tpe": {
                "n_trials": 12,
                "max_in_flight": 3,
                "n_startup": 5,
                "space": {"max_depth": {"int": [2, 7]}, "learning_rate": {"choice": [0.1, 0.3]}},
            },
        },
        "lightgbm": {
            "random": {"n_trials": 5, "space": {"num_leaves": {"int": [4, 8]}}},
            "asha": {
                "n_trials": 30,
                "min_rounds": 5,
                "max_rounds": 45,
                "eta": 3,
                "space": {
                    "learning_rate": {"loguniform": [0.01, 1.0]},
                    "num_leaves": {"int": [4, 8]},
                },
            },
        },
        "noop": {"fixed": {"score": 0.5}},
    },
}


def peak(params: dict[str, Any]) -> float:
    lr = float(params.get("learning_rate", 0.1))
    depth = int(params.get("max_depth", 6))
    return (
        -((math.log10(lr) + 1) ** 2)
        - 0.05 * (depth - 6) ** 2
        + int(params.get("n_estimators", 0)) / 1000
    )


def run(spec: StudySpec, *, lifo: bool = False) -> list[TrialSpec]:
    """Every trial decided, each result in turn (first in first out: one worker)."""
    req = StudyRequest(study_id=spec.study_id(), spec=spec, submitted_at=0.0)
    trials, searches = decide(req, {})
    queue: list[TrialSpec] = list(trials)
    decided: list[TrialSpec] = list(trials)
    while queue:
        trial = queue.pop(-1 if lifo else 0)
        score = peak(dict(trial.params))
        new = [
            TrialSpec(trial_id=d.trial_id, library=d.library, params=d.params)
            for d in searches.react(trial.trial_id, outcome_of("done", score))
        ]
        queue.extend(new)
        decided.extend(new)
    return decided


def digest(trials: list[TrialSpec]) -> dict[str, Any]:
    rows = [[t.trial_id, t.library, t.params] for t in trials]
    text = json.dumps(rows, sort_keys=True)
    return {"n": len(rows), "sha": hashlib.sha256(text.encode()).hexdigest(), "first": rows[:3]}


def scenario(spec: StudySpec) -> dict[str, Any]:
    found: dict[str, Any] = {
        "study_id": spec.study_id(),
        "upfront": digest(list(expand(spec, spec.study_id()))),
    }
    if spec.adaptive:
        found.update(run=digest(run(spec)), run_lifo=digest(run(spec, lifo=True)))
    return found


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples").glob("*.yaml")))
def test_every_example_decides_as_before(name: str) -> None:
    assert scenario(load_spec(ROOT / "examples" / name)) == json.loads(json.dumps(EXPECTED[name]))


def test_a_study_of_every_search_kind_decides_as_before() -> None:
    assert scenario(parse_spec(MIXED)) == EXPECTED["mixed"]


def test_the_canonical_json_of_a_spec_is_unchanged() -> None:
    data = {
        "name": "c",
        "dataset": {"kind": "make_classification", "n_samples": 100},
        "search": {"xgboost": {"random": {"n_trials": 3, "seed": 5, "space": SPACE}}},
    }
    spec = parse_spec(data)
    assert spec.canonical_json() == EXPECTED["canonical"]["json"]
    assert spec.study_id() == EXPECTED["canonical"]["id"]
