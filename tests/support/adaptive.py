"""A study with a TPE and an ASHA search, as the planner and the workers would leave it in the
store: its plan and its results, made by hand (scores from a formula), so that what status,
top and the report say of it can be checked without services. The plan names no search, as
plans stored before the plan recorded it: the read side infers which search decided what."""

from __future__ import annotations

import math

from tunefleet_contract.messages import PlannedSpec, TrialResult, TrialsPlanned
from tunefleet_contract.spec import StudySpec
from tunefleet_runtime.records import StudyRecord
from tunefleet_runtime.store.memory import MemoryStore

STUDY = "adaptive-000000000000"
SPEC = StudySpec.model_validate(
    {
        "name": "adaptive",
        "dataset": "breast_cancer",
        "metric": "roc_auc",
        "search": {
            "xgboost": {
                "fixed": {"n_estimators": 50},
                "grid": {"max_depth": [3]},
                "tpe": {
                    "n_trials": 20,
                    "space": {
                        "learning_rate": {"loguniform": [0.01, 0.3]},
                        "max_depth": {"int": [2, 10]},
                    },
                },
            },
            "lightgbm": {
                "fixed": {"verbose": -1},
                "asha": {
                    "n_trials": 39,
                    "min_rounds": 10,
                    "max_rounds": 90,
                    "eta": 3,
                    "space": {"num_leaves": {"int": [4, 64]}},
                },
            },
        },
    }
)
RUNGS = (10, 30, 90)


def asha_score(leaves: int, rung: int) -> float:
    """Best near 30 leaves, better with more rounds."""
    return round(0.80 + 0.1 * (1 - abs(leaves - 30) / 60) + 0.02 * rung, 6)


def tpe_score(learning_rate: float) -> float:
    """Best at a learning rate of 0.1."""
    return round(0.95 - 0.01 * math.log(learning_rate / 0.1) ** 2, 6)


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.n:024x}"


def adaptive_study() -> tuple[list[PlannedSpec], list[TrialResult]]:
    """The plan, in decision order, and the results: the grid's one trial; 20 TPE trials; 27
    ASHA configurations at 10 rounds, the best 9 promoted to 30, the best 3 of those to 90,
    whose last trial has no result yet (38 of 39 finished). Results finish one a second."""
    new_id = _Ids()
    plan: list[PlannedSpec] = []
    results: list[TrialResult] = []

    def trial(library: str, params: dict[str, int | float], score: float | None) -> None:
        spec = PlannedSpec(trial_id=new_id(), library=library, params=params)
        plan.append(spec)
        if score is not None:
            results.append(
                TrialResult(
                    study_id=STUDY,
                    trial_id=spec.trial_id,
                    library=library,
                    params=params,
                    status="done",
                    metric="roc_auc",
                    score=score,
                    score_std=0.01,
                    fit_time_s=0.5,
                    finished_at=1_700_000_000.0 + len(results),
                    worker="w1",
                )
            )

    trial("xgboost", {"n_estimators": 50, "max_depth": 3}, 0.9)
    for i in range(20):
        rate = round(0.01 * 1.18**i, 6)
        trial(
            "xgboost",
            {"n_estimators": 50, "learning_rate": rate, "max_depth": 2 + i % 9},
            tpe_score(rate),
        )
    leaves = [4 + 2 * i for i in range(27)]
    for rung, keep in enumerate((27, 9, 3)):
        leaves = sorted(leaves, key=lambda n: -asha_score(n, rung))[:keep]
        for n in sorted(leaves):
            last = rung == 2 and n == max(leaves)
            params = {"verbose": -1, "num_leaves": n, "n_estimators": RUNGS[rung]}
            trial("lightgbm", params, None if last else asha_score(n, rung))
    return plan, results


def adaptive_store() -> MemoryStore:
    plan, results = adaptive_study()
    store = MemoryStore()
    store.put_study(
        StudyRecord(study_id=STUDY, spec=SPEC, n_trials=len(plan), revision=0, submitted_at=1.0)
    )
    store.write_events([TrialsPlanned(study_id=STUDY, first=0, trials=plan), *results])
    return store
