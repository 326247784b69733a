"""The planner decides what it decided before the search package was its home: for every
example spec and a study mixing every search kind, the same study id, the same trials (ids and
parameters) in the same order, up front and through TPE and ASHA runs with one worker and with
results coming back last-in first-out. The expected digests were made by main at 672c610.

TPE's decisions rest on numpy's exp and log, whose AVX-512 kernels round differently in the last
bit from its AVX2 ones, and a sequence of decisions turns one bit into different trials. The
digests were made with AVX2 kernels, so the decisions are computed in a child process with
numpy's AVX-512 dispatch turned off: the same arithmetic on every x86-64 machine CI may get."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
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


# The examples main had at 672c610, whose decisions the digests pin; an example added since
# has no digest from then (early_stopping.yaml: its trials are plain random and grid points).
EXAMPLES = sorted(name for name in EXPECTED if name.endswith(".yaml"))
# numpy 2.4's names for the kernels above AVX2 (X86_V3), the level the digests were made at.
ABOVE_AVX2 = ("X86_V4", "AVX512_ICL", "AVX512_SPR")


def every_scenario() -> dict[str, Any]:
    found = {name: scenario(load_spec(ROOT / "examples" / name)) for name in EXAMPLES}
    found["mixed"] = scenario(parse_spec(MIXED))
    return json.loads(json.dumps(found))


@pytest.fixture(scope="module")
def decided() -> dict[str, Any]:
    from numpy._core._multiarray_umath import __cpu_features__

    disabled = " ".join(f for f in ABOVE_AVX2 if __cpu_features__.get(f))
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": disabled, "PYTHONPATH": str(ROOT)}
    code = f"import json, {__name__} as t; print(json.dumps(t.every_scenario()))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_decides_as_before(decided: dict[str, Any], name: str) -> None:
    assert decided[name] == json.loads(json.dumps(EXPECTED[name]))


def test_a_study_of_every_search_kind_decides_as_before(decided: dict[str, Any]) -> None:
    assert decided["mixed"] == EXPECTED["mixed"]


def test_the_canonical_json_of_a_spec_is_unchanged() -> None:
    data = {
        "name": "c",
        "dataset": {"kind": "make_classification", "n_samples": 100},
        "search": {"xgboost": {"random": {"n_trials": 3, "seed": 5, "space": SPACE}}},
    }
    spec = parse_spec(data)
    assert spec.canonical_json() == EXPECTED["canonical"]["json"]
    assert spec.study_id() == EXPECTED["canonical"]["id"]
