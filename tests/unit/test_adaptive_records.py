"""What the CLI, live progress and the report say of adaptive searches, from trial lists."""

from __future__ import annotations

from typing import Any

import pytest
from tunefleet_contract.messages import PlannedSpec
from tunefleet_contract.search.history import asha_rungs, best_so_far, highest_rung, ladders
from tunefleet_contract.search.views import SearchTally, SearchView, library_strategy
from tunefleet_contract.spec import StudySpec
from tunefleet_runtime.records import StudyActivity, TrialRecord

SPEC = StudySpec.model_validate(
    {
        "name": "adaptive",
        "dataset": "breast_cancer",
        "search": {
            "xgboost": {
                "fixed": {"n_estimators": 50},
                "grid": {"max_depth": [3]},
                "tpe": {
                    "n_trials": 6,
                    "space": {
                        "learning_rate": {"loguniform": [0.01, 0.3]},
                        "max_depth": {"int": [2, 10]},
                    },
                },
            },
            "lightgbm": {
                "fixed": {"verbose": -1},
                "asha": {
                    "n_trials": 12,
                    "min_rounds": 10,
                    "max_rounds": 90,
                    "eta": 3,
                    "space": {"num_leaves": {"int": [4, 64]}},
                },
            },
            "catboost": {"random": {"n_trials": 2, "space": {"depth": {"int": [2, 8]}}}},
        },
    }
)


def hexid(name: str) -> str:
    """A trial id as the contract wants one (trial records in these tests keep short names)."""
    return name.encode().hex().rjust(24, "0")


def record(
    tid: str,
    library: str,
    params: dict[str, Any],
    score: float | None,
    finished_at: float,
    status: str = "done",
) -> TrialRecord:
    return TrialRecord(
        trial_id=tid,
        study_id="s",
        library=library,
        params=params,
        status=status,
        revision=0,
        finished_at=finished_at,
        score=score,
        metric="accuracy",
    )


def lgbm(tid: str, leaves: int, rounds: int, score: float | None, at: float) -> TrialRecord:
    params = {"verbose": -1, "num_leaves": leaves, "n_estimators": rounds}
    return record(tid, "lightgbm", params, score, at, "done" if score is not None else "failed")


# An ASHA study with eta 3 and rungs 10, 30, 90: six configurations at rung 0 (one failed), the
# best two of the first scored promoted to 30 rounds, one of those to 90.
ASHA_TRIALS = [
    lgbm("a0", 4, 10, 0.90, 1.0),
    lgbm("b0", 8, 10, 0.93, 2.0),
    lgbm("c0", 16, 10, 0.91, 3.0),
    lgbm("b1", 8, 30, 0.95, 4.0),
    lgbm("d0", 32, 10, 0.94, 5.0),
    lgbm("e0", 48, 10, None, 6.0),
    lgbm("f0", 64, 10, 0.89, 7.0),
    lgbm("d1", 32, 30, 0.96, 8.0),
    lgbm("d2", 32, 90, 0.97, 9.0),
]


def test_strategy_names_each_librarys_searches() -> None:
    assert library_strategy(SPEC.search["xgboost"]) == "grid+tpe"
    assert library_strategy(SPEC.search["lightgbm"]) == "asha"
    assert library_strategy(SPEC.search["catboost"]) == "random"
    fixed_only = StudySpec.model_validate(
        {"dataset": "iris", "search": {"xgboost": {"fixed": {"max_depth": 3}}}}
    )
    assert library_strategy(fixed_only.search["xgboost"]) == "grid"


def test_rung_and_configuration_of_an_asha_trial() -> None:
    asha = SearchView.of(SPEC, "lightgbm")
    assert asha is not None and asha.key == "asha"
    assert (asha.rounds, asha.rungs) == ("n_estimators", (10, 30, 90))
    params = {"verbose": -1, "num_leaves": 8, "n_estimators": 30}
    assert asha.rung(params) == 1
    assert asha.configuration(params) == {"verbose": -1, "num_leaves": 8}
    assert asha.rung({**params, "n_estimators": 31}) is None  # between rungs: not ASHA's
    assert asha.rung({**params, "n_estimators": 30.0}) is None  # the rungs are ints
    assert asha.configuration_key(params) == asha.configuration_key({**params, "n_estimators": 90})
    assert SearchView.of(SPEC, "catboost") is None


def test_which_trials_an_adaptive_search_decided() -> None:
    tpe = SearchView.of(SPEC, "xgboost")
    asha = SearchView.of(SPEC, "lightgbm")
    assert tpe is not None and asha is not None
    point = {"n_estimators": 50, "learning_rate": 0.05, "max_depth": 4}
    assert tpe.owns("xgboost", point)
    assert not tpe.owns("lightgbm", point)
    assert not tpe.owns("xgboost", {"n_estimators": 50, "max_depth": 3})  # the grid's point
    assert not tpe.owns("xgboost", {**point, "learning_rate": 0.5})  # outside the space
    assert not tpe.owns("xgboost", {**point, "max_depth": 4.0})  # int: [2, 10] draws ints
    assert not tpe.owns("xgboost", {**point, "n_estimators": 60})  # not the fixed value
    assert not tpe.owns("xgboost", {**point, "gamma": 1.0})  # not in the space
    assert asha.owns("lightgbm", {"verbose": -1, "num_leaves": 8, "n_estimators": 10})
    assert not asha.owns("lightgbm", {"verbose": -1, "num_leaves": 8, "n_estimators": 20})
    assert not asha.owns("lightgbm", {"verbose": -1, "n_estimators": 10})  # num_leaves missing


def test_a_conditional_parameter_may_be_absent() -> None:
    spec = StudySpec.model_validate(
        {
            "dataset": "iris",
            "search": {
                "xgboost": {
                    "tpe": {
                        "n_trials": 3,
                        "space": {
                            "grow_policy": {"choice": ["depthwise", "lossguide"]},
                            "max_leaves": {"int": [4, 64], "when": {"grow_policy": "lossguide"}},
                        },
                    }
                }
            },
        }
    )
    tpe = SearchView.of(spec, "xgboost")
    assert tpe is not None
    assert tpe.owns("xgboost", {"grow_policy": "depthwise"})
    assert tpe.owns("xgboost", {"grow_policy": "lossguide", "max_leaves": 16})
    assert not tpe.owns("xgboost", {"max_leaves": 16})  # grow_policy is unconditional
    assert not tpe.owns("xgboost", {"grow_policy": "other"})


def test_best_so_far_follows_the_order_results_finished_in() -> None:
    points = best_so_far(reversed(ASHA_TRIALS))  # the order given does not matter
    assert [p.trial_id for p in points] == ["a0", "b0", "c0", "b1", "d0", "f0", "d1", "d2"]
    assert [p.order for p in points] == list(range(1, 9))
    assert [p.best for p in points] == [0.90, 0.93, 0.93, 0.95, 0.95, 0.95, 0.96, 0.97]
    assert [p.best_trial_id for p in points][2:5] == ["b0", "b1", "b1"]
    assert points[2].score == 0.91
    assert best_so_far([]) == []
    tie = [record("z", "noop", {}, 0.5, 1.0), record("y", "noop", {}, 0.6, 1.0)]
    assert [p.trial_id for p in best_so_far(tie)] == ["y", "z"]  # same time: by trial id


def test_rungs_count_decisions_scores_and_promotions() -> None:
    asha = SearchView.of(SPEC, "lightgbm")
    assert asha is not None
    other = record("x", "xgboost", {"n_estimators": 10, "num_leaves": 4}, 0.99, 1.0)
    rungs = asha_rungs(asha, [*ASHA_TRIALS, other])
    assert [(r.rounds, r.decided, r.scored, r.failed, r.promoted) for r in rungs] == [
        (10, 6, 5, 1, 2),
        (30, 2, 2, 0, 1),
        (90, 1, 1, 0, 0),
    ]
    assert [(r.best_trial_id, r.best_score) for r in rungs] == [
        ("d0", 0.94),
        ("d1", 0.96),
        ("d2", 0.97),
    ]
    # A promotion decided and not yet scored counts from the plan.
    planned = [
        PlannedSpec(
            trial_id=hexid("c1"),
            library="lightgbm",
            params={"verbose": -1, "num_leaves": 16, "n_estimators": 30},
        ),
        PlannedSpec(
            trial_id=hexid("x"), library="xgboost", params={"n_estimators": 30, "num_leaves": 4}
        ),
    ]
    rungs = asha_rungs(asha, ASHA_TRIALS, planned)
    assert [(r.decided, r.scored, r.promoted) for r in rungs] == [(6, 5, 3), (3, 2, 1), (1, 1, 0)]
    assert rungs[1].as_dict()["promoted"] == 1


def test_ladders_show_the_top_rungs_configurations() -> None:
    asha = SearchView.of(SPEC, "lightgbm")
    assert asha is not None
    top = ladders(asha, ASHA_TRIALS)
    assert len(top) == 1
    assert top[0].configuration == {"verbose": -1, "num_leaves": 32}
    assert top[0].scores == {0: 0.94, 1: 0.96, 2: 0.97}
    assert top[0].trial_ids == {0: "d0", 1: "d1", 2: "d2"}
    promoted = ladders(asha, ASHA_TRIALS, min_rung=1)
    assert [(ladder.top, ladder.trial_ids[ladder.top]) for ladder in promoted] == [
        (2, "d2"),
        (1, "b1"),
    ]


def test_highest_rung_gives_each_configuration_once() -> None:
    asha = SearchView.of(SPEC, "lightgbm")
    assert asha is not None
    # c was promoted and failed at 30 rounds: its 10-round score stands for it.
    trials = [*ASHA_TRIALS, lgbm("c1", 16, 30, None, 10.0)]
    assert [r.trial_id for r in highest_rung(asha, trials)] == ["a0", "b1", "c0", "d2", "f0"]


def test_tally_counts_each_librarys_search() -> None:
    tally = SearchTally(SPEC)
    tpe_point = {"n_estimators": 50, "learning_rate": 0.05, "max_depth": 4}
    tally.planned("t1", "xgboost", tpe_point)
    tally.planned("t2", "xgboost", {**tpe_point, "learning_rate": 0.1})
    tally.planned("g1", "xgboost", {"n_estimators": 50, "max_depth": 3})  # the grid's
    tally.result("g1", "xgboost", {"n_estimators": 50, "max_depth": 3}, "done", 0.99)
    tally.result("t1", "xgboost", tpe_point, "done", 0.95)
    tally.result("t1", "xgboost", tpe_point, "done", 0.2)  # a repeat counts once
    for trial in ASHA_TRIALS:
        tally.result(trial.trial_id, trial.library, trial.params, trial.status, trial.score)
    xgb, lgb, cat = tally.status()
    assert (xgb.strategy, xgb.adaptive, xgb.n_trials) == ("grid+tpe", "tpe", 6)
    assert (xgb.decided, xgb.adaptive_finished, xgb.finished) == (2, 1, 2)
    assert (xgb.best_score, xgb.best_trial_id) == (0.99, "g1")
    assert (lgb.strategy, lgb.decided, lgb.adaptive_finished) == ("asha", 9, 9)
    assert lgb.rung_finished == (6, 2, 1) and lgb.n_trials == 12
    assert (lgb.best_score, lgb.best_trial_id) == (0.97, "d2")
    assert (cat.strategy, cat.adaptive, cat.finished, cat.best_score) == ("random", None, 0, None)
    assert cat.as_dict() == {
        "library": "catboost",
        "strategy": "random",
        "finished": 0,
        "best_score": None,
        "best_trial_id": None,
    }
    assert lgb.as_dict()["rung_finished"] == [6, 2, 1]


@pytest.mark.parametrize("spec_first", [True, False])
def test_activity_tallies_searches_whenever_the_spec_arrives(spec_first: bool) -> None:
    activity = StudyActivity("s")
    if spec_first:
        activity.registration(21, SPEC)
    activity.plan(
        [
            PlannedSpec(
                trial_id=hexid("p1"), library="xgboost", params={"n_estimators": 50, "max_depth": 5}
            )
        ]
    )
    activity.load(ASHA_TRIALS, [])
    if not spec_first:
        assert activity.status().searches == ()
        activity.registration(21, SPEC)
    xgb, lgb, _ = activity.status().searches
    assert (xgb.decided, xgb.adaptive_finished) == (0, 0)  # p1 lacks learning_rate: not TPE's
    assert (lgb.decided, lgb.rung_finished, lgb.best_trial_id) == (9, (6, 2, 1), "d2")


def test_trials_yet_to_decide_are_not_queued() -> None:
    activity = StudyActivity("s")
    activity.registration(21, SPEC)  # 1 grid point, 6 TPE, 12 ASHA, 2 random trials
    tpe = {"n_estimators": 50, "learning_rate": 0.05, "max_depth": 4}
    planned = [
        ("g", "xgboost", {"n_estimators": 50, "max_depth": 3}),
        ("t1", "xgboost", tpe),
        ("t2", "xgboost", {**tpe, "max_depth": 5}),
        ("c1", "catboost", {"depth": 2}),
        ("c2", "catboost", {"depth": 3}),
        *(
            (f"a{n}", "lightgbm", {"verbose": -1, "num_leaves": n, "n_estimators": 10})
            for n in (4, 8, 16)
        ),
    ]
    activity.plan(PlannedSpec(trial_id=hexid(t), library=lib, params=p) for t, lib, p in planned)
    activity.load([lgbm(hexid("a4"), 4, 10, 0.9, 1.0)], [])
    activity.start(hexid("t1"), 1, "w1")
    status = activity.status()
    assert (status.done, status.running, status.undecided, status.queued) == (1, 1, 13, 6)
