"""The plan records which search decided each trial, and the read side reads it: a grid point
or a random draw that lies in a TPE search's space is the grid's or the random search's, where
inferring from the parameters (all that plans stored before could offer) says TPE. Plans that
name no search keep that inference."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tunefleet import cli
from tunefleet.cli import common
from tunefleet.client import Client
from tunefleet_contract.messages import (
    PlannedSpec,
    StudyRequest,
    TrialResult,
    TrialSpec,
    TrialsPlanned,
)
from tunefleet_contract.search.views import Decisions, SearchTally, SearchView, trial_search
from tunefleet_publisher.planner import decide, plan
from tunefleet_runtime.records import StudyRecord
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store import study_status
from tunefleet_runtime.store.memory import MemoryStore
from tunefleet_runtime.validation import parse_spec
from typer.testing import CliRunner

SPACE = {"learning_rate": {"choice": [0.05, 0.1, 0.3]}, "max_depth": {"choice": [2, 3, 4]}}
SPEC = parse_spec(
    {
        "name": "records",
        "dataset": "iris",
        "search": {
            "xgboost": {
                "fixed": {"n_estimators": 20},
                "grid": {"learning_rate": [0.1], "max_depth": [3]},
                "random": {"n_trials": 2, "space": SPACE},
                "tpe": {"n_trials": 3, "max_in_flight": 3, "n_startup": 2, "space": SPACE},
            },
            "lightgbm": {
                "asha": {
                    "n_trials": 4,
                    "max_in_flight": 4,
                    "min_rounds": 10,
                    "max_rounds": 30,
                    "space": {"num_leaves": {"int": [4, 64]}},
                }
            },
        },
    }
)
STUDY = SPEC.study_id()


def planned() -> list[TrialSpec]:
    request = StudyRequest(study_id=STUDY, spec=SPEC, submitted_at=0.0)
    trials, _ = decide(request, {})
    return list(trials)


def results(trials: list[TrialSpec]) -> list[TrialResult]:
    return [
        TrialResult.of(STUDY, t, revision=0, attempts=1, status="done", score=0.5 + i / 100)
        for i, t in enumerate(trials)
    ]


def store_of(plan: list[TrialSpec]) -> MemoryStore:
    store = MemoryStore()
    store.put_study(StudyRecord(STUDY, SPEC, n_trials=10, revision=0, submitted_at=1.0))
    store.write_events([TrialsPlanned(study_id=STUDY, first=0, trials=plan), *results(plan)])
    return store


def test_each_planned_trial_names_its_search_and_rung() -> None:
    plan = planned()
    searches = [(t.library, getattr(t, "search", None)) for t in plan]
    assert searches == [
        ("xgboost", "grid"),
        ("xgboost", "random"),
        ("xgboost", "random"),
        ("xgboost", "tpe"),
        ("xgboost", "tpe"),
        ("xgboost", "tpe"),
        *[("lightgbm", "asha")] * 4,
    ]
    assert {getattr(t, "rung", None) for t in plan if t.library == "lightgbm"} == {0}
    # Every upfront point lies in the TPE space too: the parameters alone cannot tell them.
    tpe = SearchView.of(SPEC, "xgboost")
    assert tpe is not None and all(tpe.owns("xgboost", t.params) for t in plan[:3])


def test_a_trial_message_carries_no_record_of_the_search() -> None:
    request = StudyRequest(study_id=STUDY, spec=SPEC, submitted_at=0.0)
    messages = plan(request, {}, 0).messages()
    trials = [t for m in messages for t in json.loads(m.encode())["trials"]]
    assert len(trials) == 10 and {tuple(sorted(t)) for t in trials} == {
        ("library", "params", "trial_id")
    }


def test_the_read_side_takes_the_record_over_the_parameters() -> None:
    plan = planned()
    recorded = Decisions(SPEC, plan)  # type: ignore[arg-type]  # PlannedSpecs: the record
    inferred = Decisions(SPEC)
    shown = [trial_search(SPEC, recorded, t.library, t.params, t.trial_id) for t in plan]
    assert shown[:6] == ["grid", "random", "random", "tpe", "tpe", "tpe"]
    assert shown[6:] == ["asha 10"] * 4
    guessed = [trial_search(SPEC, inferred, t.library, t.params, t.trial_id) for t in plan[:3]]
    assert guessed == ["tpe"] * 3  # what a plan without records makes of the same trials


def test_status_counts_the_adaptive_search_by_the_record() -> None:
    status = study_status(store_of(planned()), STUDY)
    assert status is not None
    xgb, lgb = status.searches
    assert (xgb.adaptive, xgb.decided, xgb.adaptive_finished, xgb.finished) == ("tpe", 3, 3, 6)
    assert (lgb.decided, lgb.rung_finished) == (4, (4, 0))


def test_a_plan_stored_before_records_keeps_the_inference() -> None:
    old = [PlannedSpec(trial_id=t.trial_id, library=t.library, params=t.params) for t in planned()]
    status = study_status(store_of(old), STUDY)
    assert status is not None
    xgb, lgb = status.searches
    # The grid's and the random search's points lie in TPE's space: inferred as TPE's.
    assert (xgb.decided, xgb.adaptive_finished) == (6, 6)
    assert (lgb.decided, lgb.rung_finished) == (4, (4, 0))


def test_a_result_counted_before_its_decision_is_counted_again_by_it() -> None:
    plan = planned()
    tally = SearchTally(SPEC)
    grid_point = plan[0]
    tally.result(grid_point.trial_id, "xgboost", grid_point.params, "done", 0.9)
    xgb, _ = tally.status()
    assert (xgb.decided, xgb.adaptive_finished) == (1, 1)  # inferred: TPE's, for now
    tally.planned(grid_point.trial_id, "xgboost", grid_point.params, "grid")
    xgb, _ = tally.status()
    assert (xgb.decided, xgb.adaptive_finished, xgb.finished) == (0, 0, 1)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Client:
    settings = ClientSettings(rabbitmq_url="amqp://u:p@nowhere:1/", mongodb_url="mongodb://x:1")
    found = Client(settings, store=store_of(planned()))
    monkeypatch.setattr(common, "client", lambda: found)
    return found


def test_top_shows_the_recorded_search(client: Client) -> None:
    shown = CliRunner().invoke(cli.app, ["top", STUDY, "-n", "20", "--json"])
    assert shown.exit_code == 0, shown.output
    rows: list[dict[str, Any]] = [json.loads(line) for line in shown.stdout.splitlines()]
    by_search: dict[str, int] = {}
    for row in rows:
        by_search[row["search"]] = by_search.get(row["search"], 0) + 1
    assert by_search == {"grid": 1, "random": 2, "tpe": 3, "asha 10": 4}
