"""The adaptive searches (TPE, ASHA) as the planner drives them, with results made up by a
deterministic objective instead of workers: what they decide, when, and after a restart."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from tunefleet_contract.messages import StudyRequest, TrialResult, TrialSpec
from tunefleet_contract.search import outcome_of
from tunefleet_contract.search.adaptive import AdaptiveStrategy
from tunefleet_contract.search.plan import Searches
from tunefleet_contract.spec import SpecError
from tunefleet_publisher.planner import decide, plan, planned
from tunefleet_runtime.records import PlannedTrial, ResultState
from tunefleet_runtime.validation import parse_spec

Objective = Callable[[dict[str, Any]], float]


def peak(params: dict[str, Any]) -> float:
    """Best at learning_rate 0.1, max_depth 6; ASHA's rounds add a little."""
    lr = float(params["learning_rate"])
    depth = int(params.get("max_depth", 6))
    rounds = int(params.get("n_estimators", 0))
    return -((math.log10(lr) + 1) ** 2) - 0.05 * (depth - 6) ** 2 + rounds / 1000


def request(search: dict[str, Any], *, revision: int = 0) -> StudyRequest:
    spec = parse_spec({"name": "adaptive", "dataset": "iris", "search": {"xgboost": search}})
    return StudyRequest(study_id=spec.study_id(), spec=spec, submitted_at=0.0, revision=revision)


TPE = {
    "fixed": {"n_estimators": 20},
    "tpe": {
        "n_trials": 30,
        "max_in_flight": 3,
        "n_startup": 8,
        "seed": 7,
        "space": {
            "learning_rate": {"loguniform": [0.001, 1.0]},
            "max_depth": {"int": [2, 10]},
        },
    },
}
ASHA = {
    "asha": {
        "n_trials": 40,
        "max_in_flight": 2,
        "min_rounds": 10,
        "max_rounds": 90,
        "eta": 3,
        "seed": 3,
        "space": {"learning_rate": {"loguniform": [0.001, 1.0]}},
    }
}


def result(req: StudyRequest, trial: TrialSpec, objective: Objective) -> TrialResult:
    return TrialResult.of(
        req.study_id,
        trial,
        revision=req.revision,
        attempts=1,
        status="done",
        score=objective(dict(trial.params)),
    )


def tell(searches: Searches, outcome: TrialResult) -> list[TrialSpec]:
    """What the study's searches decide on a result, as the planner sees it."""
    decided = searches.react(outcome.trial_id, outcome_of(outcome.status, outcome.score))
    return [planned(d) for d in decided]


def adaptive(searches: Searches) -> Any:
    (search,) = searches.reactive
    assert isinstance(search, AdaptiveStrategy)
    return search


def run(
    req: StudyRequest, objective: Objective = peak, *, stop_after: int | None = None
) -> tuple[list[TrialSpec], Any, list[TrialSpec]]:
    """One worker: trials finish in the order they were decided. Returns every decision in
    order, the search, and what is still in flight (when stopped early)."""
    trials, searches = decide(req, {})
    search = adaptive(searches)
    queue: list[TrialSpec] = list(trials)
    decided: list[TrialSpec] = list(trials)
    finished = 0
    while queue and (stop_after is None or finished < stop_after):
        trial = queue.pop(0)
        new = tell(searches, result(req, trial, objective))
        finished += 1
        queue.extend(new)
        decided.extend(new)
    return decided, search, queue


def test_tpe_decides_exactly_n_trials_never_more_than_max_in_flight_at_once() -> None:
    req = request(TPE)
    trials, searches = decide(req, {})
    assert len(adaptive(searches).decided) == 3
    assert len(trials) == 3  # max_in_flight, before any result
    assert len({t.trial_id for t in trials}) == 3
    decided, search, queue = run(req)
    assert len(decided) == 30 and len({t.trial_id for t in decided}) == 30
    assert queue == [] and search.done
    assert all(t.params["n_estimators"] == 20 for t in decided)  # fixed parameters kept


def test_tpe_with_one_worker_and_a_seed_proposes_the_same_trials_in_the_same_order() -> None:
    first = [t.trial_id for t in run(request(TPE))[0]]
    again = [t.trial_id for t in run(request(TPE))[0]]
    assert first == again
    other_seed = {**TPE, "tpe": {**TPE["tpe"], "seed": 8}}
    assert [t.trial_id for t in run(request(other_seed))[0]] != first


def test_tpe_results_steer_it_to_better_points_than_its_random_start() -> None:
    decided, _, _ = run(request(TPE))
    scores = [peak(dict(t.params)) for t in decided]
    startup, guided = scores[:8], scores[-10:]
    # The guided trials are near the optimum where the random start is spread out.
    assert sorted(guided)[len(guided) // 2] > sorted(startup)[len(startup) // 2]
    assert max(scores) > -0.05


def test_a_redelivered_result_decides_nothing_new() -> None:
    req = request(TPE)
    trials, searches = decide(req, {})
    done = result(req, trials[0], peak)
    assert len(tell(searches, done)) == 1
    assert tell(searches, done) == []
    assert len(adaptive(searches).decided) == 4


def restored(req: StudyRequest, decided: list[TrialSpec], outcomes: dict[str, float]) -> Any:
    recorded = [PlannedTrial(t.trial_id, t.library, t.params, req.revision) for t in decided]
    stored = {tid: ResultState("done", req.revision, score) for tid, score in outcomes.items()}
    return decide(req, stored, recorded)


@pytest.mark.parametrize("search", [TPE, ASHA], ids=["tpe", "asha"])
def test_a_search_rebuilt_from_the_store_decides_what_the_running_one_would(
    search: dict[str, Any],
) -> None:
    req = request(search)
    uninterrupted, _, _ = run(req)
    # The planner dies after 12 results: what the store has is what it decided and what came.
    decided, live, queue = run(req, stop_after=12)
    outcomes = {tid: score for tid, score in live.outcomes.items() if score is not None}
    trials, searches = restored(req, decided, outcomes)
    assert [t.trial_id for t in trials] == [t.trial_id for t in decided]  # nothing new yet
    assert adaptive(searches).in_flight == len(queue)
    order = list(decided)
    while queue:
        trial = queue.pop(0)
        new = tell(searches, result(req, trial, peak))
        queue.extend(new)
        order.extend(new)
    assert [t.trial_id for t in order] == [t.trial_id for t in uninterrupted]


def test_asha_promotes_the_best_third_of_a_rung_and_never_waits_for_a_rung_to_fill() -> None:
    req = request(ASHA)
    decided, search, _ = run(req)
    assert search.done
    assert len(decided) == 40 and len({t.trial_id for t in decided}) == 40
    rounds = [t.params["n_estimators"] for t in decided]
    assert set(rounds) == {10, 30, 90}
    # Two configurations start at rung 0 (max_in_flight); the first result is the best of its
    # rung so far (the top third, rounded up) and goes on at once: nothing waits for a rung.
    assert rounds[:3] == [10, 10, 30]
    assert decided[2].params["learning_rate"] == decided[0].params["learning_rate"]

    def config(t: TrialSpec) -> float:
        return float(t.params["learning_rate"])

    at = {r: [t for t in decided if t.params["n_estimators"] == r] for r in (10, 30, 90)}
    # Every promoted configuration was scored at the rung below, in its top third then.
    for low, high in ((10, 30), (30, 90)):
        lower = {config(t) for t in at[low]}
        assert all(config(t) in lower for t in at[high])
        assert len(at[high]) < len(at[low])
    # The best configuration of rung 0 went all the way up.
    best = max(at[10], key=lambda t: peak(dict(t.params)))
    assert config(best) in {config(t) for t in at[90]}
    # A promotion is the same configuration with more rounds: its own trial.
    top = at[90][0]
    same = [t for t in at[10] if config(t) == config(top)]
    assert same and same[0].trial_id != top.trial_id


def test_asha_never_promotes_a_failed_trial() -> None:
    req = request(ASHA)
    trials, searches = decide(req, {})
    failing = [
        TrialResult.failed(req.study_id, t, revision=0, attempts=1, reason="error", error="boom")
        for t in trials
    ]
    new = [t for failure in failing for t in tell(searches, failure)]
    assert all(t.params["n_estimators"] == 10 for t in new)


def test_a_resume_keeps_the_searchs_decisions_and_publishes_what_has_no_result() -> None:
    req = request(TPE)
    decided, live, queue = run(req, stop_after=10)
    resumed = request(TPE, revision=1)
    recorded = [PlannedTrial(t.trial_id, t.library, t.params, 0) for t in decided]
    stored = {
        tid: ResultState("done", 0, score)
        for tid, score in live.outcomes.items()
        if score is not None
    }
    decision = plan(resumed, stored, 0, recorded)
    assert [t.trial_id for t in decision.trials] == [t.trial_id for t in decided]
    assert {t.trial_id for t in decision.publish} == {t.trial_id for t in queue}
    assert decision.n_trials == 30


def test_a_fixed_space_leaves_out_the_decisions_outside_it() -> None:
    req = request(TPE)
    decided, _, _ = run(req, stop_after=10)
    narrower = {
        **TPE,
        "tpe": {
            **TPE["tpe"],
            "space": {**TPE["tpe"]["space"], "max_depth": {"int": [2, 5]}},
        },
    }
    fixed = request(narrower, revision=1)
    fixed = StudyRequest(study_id=req.study_id, spec=fixed.spec, submitted_at=0.0, revision=1)
    recorded = [PlannedTrial(t.trial_id, t.library, t.params, 0) for t in decided]
    trials, _ = decide(fixed, {}, recorded)
    kept = [t for t in trials if t.trial_id in {d.trial_id for d in decided}]
    assert kept == [t for t in decided if int(t.params["max_depth"]) <= 5]
    assert all(int(t.params["max_depth"]) <= 5 for t in trials)


def test_asha_needs_a_rounds_parameter_outside_its_space() -> None:
    bad = {"asha": {**ASHA["asha"], "space": {"n_estimators": {"int": [1, 50]}}}}
    with pytest.raises(SpecError, match="the rungs set the rounds"):
        request(bad)
    with pytest.raises(SpecError, match="no rung above"):
        request({"asha": {**ASHA["asha"], "max_rounds": 20}})
    with pytest.raises(SpecError, match="tpe or asha, not both"):
        request({"asha": ASHA["asha"], "tpe": TPE["tpe"]})


def test_a_grid_and_a_random_search_beside_tpe_are_trials_it_never_decides_again() -> None:
    space = {"learning_rate": {"choice": [0.01, 0.1, 0.3]}, "max_depth": {"choice": [2, 4]}}
    search = {
        "fixed": {"n_estimators": 20},
        "grid": {"learning_rate": [0.1, 0.3], "max_depth": [2]},
        "random": {"n_trials": 2, "space": space},
        "tpe": {"n_trials": 2, "max_in_flight": 2, "n_startup": 1, "space": space},
    }
    req = request(search)
    trials, searches = decide(req, {})
    ids = [t.trial_id for t in trials]
    assert len(ids) == len(set(ids)) == 2 + 2 + 2
    upfront = set(ids[:4])
    assert not upfront & {t.trial_id for t in adaptive(searches).decided}
    # The six points of the space, four taken up front: TPE decides the other two.
    first = trials[4]
    assert tell(searches, result(req, first, peak)) == []  # n_trials decided already
    assert req.spec.n_trials() == 6


def test_a_spec_without_an_adaptive_search_keeps_the_study_id_it_always_had() -> None:
    from pathlib import Path

    from tunefleet_runtime.validation import load_spec

    examples = Path(__file__).resolve().parents[2] / "examples"
    # The ids these specs had before tpe and asha were in the schema: resubmitting a stored
    # study must address the same study and the same trials.
    assert load_spec(examples / "search.yaml").study_id() == "search-cb769b8194bd"
    assert load_spec(examples / "demo.yaml").study_id() == "demo-e42eb883c6fb"


def test_asha_promotes_the_top_third_rounded_up_best_first_then_starts_new_ones() -> None:
    wide = {"asha": {**ASHA["asha"], "max_in_flight": 4}}
    req = request(wide)
    # Seven configurations scored at rung 0 (what a restarted planner finds in the store).
    first, searches = decide(req, {})
    search = adaptive(searches)
    drawn = list(first)
    while len(drawn) < 7:
        found = search.draw({"n_estimators": 10})
        assert found is not None
        search._add(found)
        drawn.append(planned(found))
    scores = [0.3, 0.9, 0.1, 0.7, 0.5, 0.8, 0.2]
    trials, restored_searches = restored(
        req, drawn, {t.trial_id: score for t, score in zip(drawn, scores, strict=True)}
    )
    new = trials[7:]
    assert len(new) == 4  # max_in_flight, nothing in flight
    # ceil(7 / 3) = 3 promotions, best first (0.9, 0.8, 0.7), then a new configuration.
    lr = [t.params["learning_rate"] for t in new]
    by_score = [drawn[i].params["learning_rate"] for i in (1, 5, 3)]
    assert lr[:3] == by_score
    assert [t.params["n_estimators"] for t in new] == [30, 30, 30, 10]
    assert lr[3] not in {t.params["learning_rate"] for t in drawn}
    assert adaptive(restored_searches).in_flight == 4


SIX = {"learning_rate": {"choice": [0.01, 0.1, 0.3]}, "max_depth": {"choice": [2, 4]}}


@pytest.mark.parametrize("in_flight", [1, 2, 6])
def test_asha_on_a_discrete_space_counts_every_rung_as_a_trial(in_flight: int) -> None:
    # Six configurations, rungs 10, 30, 90, eta 3: 6 at rung 0, 2 promoted, 1 on top = 9.
    six = {"asha": {**ASHA["asha"], "space": SIX, "n_trials": 9, "max_in_flight": in_flight}}
    req = request(six)
    decided, search, queue = run(req)
    assert len(decided) == 9 and queue == [] and search.done
    assert len({t.trial_id for t in decided}) == 9
    assert {int(t.params["n_estimators"]) for t in decided} == {10, 30, 90}


def test_asha_refuses_more_trials_than_its_rungs_reach() -> None:
    expected = r"10 is more than the 9 trials ASHA reaches .*\(6 \+ 2 \+ 1 over its 3 rungs"
    with pytest.raises(SpecError, match=expected):
        request({"asha": {**ASHA["asha"], "space": SIX, "n_trials": 10}})
