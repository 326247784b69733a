"""The early-stopping benchmark's pure parts (bench.stopping): the configurations every side
evaluates, the grid over them, and the bars."""

from __future__ import annotations

import pytest
from tunefleet_contract.families import families
from tunefleet_contract.messages import TrialSpec
from tunefleet_contract.search.ids import trial_id
from tunefleet_runtime.validation import parse_spec

from bench.stopping import Run, Trial, bars, grid_spec, paired, random_points, rounds_grid
from bench.studies import ES_MAX_ROUNDS, es_rounds, es_spec

QUICK_ROUNDS = es_rounds("classification", quick=True)


def _run(best: float, fit_s: float, wall_s: float = 1.0) -> Run:
    return Run((Trial(best, fit_s, 10), Trial(best - 0.1, 0.0, 5), Trial(None, 0.0, None)), wall_s)


def test_the_grid_spec_crosses_the_random_searchs_points_with_the_rounds() -> None:
    spec = es_spec("classification", 3, quick=True)
    points = random_points(parse_spec(spec), "xgboost")
    assert len(points) == spec["search"]["xgboost"]["random"]["n_trials"]
    assert all(p["learning_rate"] == 0.1 for p in points)  # fixed parameters included
    grid = parse_spec(grid_spec(spec, "xgboost", points, "n_estimators", QUICK_ROUNDS))
    assert grid.search["xgboost"].early_stopping is None
    assert grid.n_trials() == len(points) * len(QUICK_ROUNDS)
    # Every planned grid trial is one of the points with one of the rounds, and the points
    # form one family each (one fit per fold scores a point's every n_estimators).
    planned = random_points(grid, "xgboost")
    assert sorted(repr(sorted(p.items())) for p in planned) == sorted(
        repr(sorted({**p, "n_estimators": n}.items())) for p in points for n in QUICK_ROUNDS
    )
    trials = [
        TrialSpec(trial_id=trial_id("s", "xgboost", p), library="xgboost", params=p)
        for p in planned
    ]
    assert sorted(len(f) for f in families(trials)) == [len(QUICK_ROUNDS)] * len(points)


def test_the_seed_changes_the_points_and_the_median_rule_does_not() -> None:
    first = random_points(parse_spec(es_spec("regression", 0, quick=True)), "xgboost")
    again = random_points(parse_spec(es_spec("regression", 0, quick=True, median=True)), "xgboost")
    other = random_points(parse_spec(es_spec("regression", 1, quick=True)), "xgboost")
    assert first == again
    assert first != other


@pytest.mark.parametrize("dataset", sorted(ES_MAX_ROUNDS))
def test_the_grid_spans_the_early_stoppings_range_in_ten_equal_steps(dataset: str) -> None:
    limit = es_spec(dataset, 0)["search"]["xgboost"]["early_stopping"]["max_rounds"]
    rounds = es_rounds(dataset)
    assert rounds[-1] == limit
    assert len(rounds) == 10
    assert {b - a for a, b in zip([0, *rounds], rounds, strict=False)} == {limit // 10}


def test_the_lightgbm_study_draws_its_own_parameters_with_bagging_on() -> None:
    spec = es_spec("regression", 0, library="lightgbm", median=True)
    parsed = parse_spec(spec)
    assert list(parsed.search) == ["lightgbm"]
    points = random_points(parsed, "lightgbm")
    assert len(points) == spec["search"]["lightgbm"]["random"]["n_trials"]
    assert all(p["subsample_freq"] == 1 and "num_leaves" in p for p in points)
    grid = parse_spec(grid_spec(spec, "lightgbm", points, "n_estimators", es_rounds("regression")))
    assert grid.n_trials() == len(points) * 10


def test_rounds_grid_leaves_out_the_fixed_parameters_and_refuses_a_set_rounds() -> None:
    grids = rounds_grid([{"a": 1, "lr": 0.1}], {"lr": 0.1}, "n_estimators", [10, 20])
    assert grids == [{"a": [1], "n_estimators": [10, 20]}]
    with pytest.raises(ValueError, match="already set"):
        rounds_grid([{"n_estimators": 5}], {}, "n_estimators", [10])
    with pytest.raises(ValueError, match="at least one"):
        rounds_grid([{"a": 1}], {}, "n_estimators", [])


def test_a_run_is_its_best_scored_trial_and_all_its_fits() -> None:
    run = Run(
        (Trial(0.5, 1.0, 10), Trial(None, 2.0, None, 7, stopped=True), Trial(0.7, 0.5, 3)), 9.0
    )
    assert run.best == 0.7
    assert run.fit_s == 3.5
    assert run.stopped == 1
    with pytest.raises(ValueError, match="no best"):
        _ = Run((Trial(None, 1.0, None),), 1.0).best


def test_paired_differences_per_seed() -> None:
    assert paired([3.0, 2.0], [1.0, 2.5]) == [2.0, -0.5]
    with pytest.raises(ValueError, match="seeds"):
        paired([1.0], [1.0, 2.0])


def test_bars_each_met_or_not() -> None:
    grid = [_run(0.90, 10.0), _run(0.92, 10.0), _run(0.91, 10.0)]
    peer = [_run(0.905, 4.0, wall_s=2.0)] * 3
    es = [_run(0.91, 4.0, wall_s=1.0), _run(0.90, 6.0, wall_s=1.5), _run(0.915, 5.0)]
    verdict = bars(es, grid, peer)
    assert verdict.within_grid_spread and verdict.half_grid_fit
    assert verdict.no_worse_than_peer and verdict.faster_than_peer and verdict.met
    # Below the grid's lowest best, over half its fits, worse and slower than the peer.
    slow = [_run(0.899, 6.0, wall_s=3.0)] * 3
    verdict = bars(slow, grid, peer)
    assert not (verdict.within_grid_spread or verdict.half_grid_fit)
    assert not (verdict.no_worse_than_peer or verdict.faster_than_peer or verdict.met)
    # Exactly half the fit seconds meets that bar; equal wall time does not beat the peer.
    even = [_run(0.91, 5.0, wall_s=2.0)] * 3
    assert bars(even, grid, peer).half_grid_fit
    assert not bars(even, grid, peer).faster_than_peer
    # Without Optuna the peer's bars are not met.
    assert not bars(es, grid, None).no_worse_than_peer


def test_raw_results_round_trip_through_json() -> None:
    import json

    from bench.early_stopping import Results

    results = Results(
        {"classification": {"es": [_run(0.9, 1.5, 2.0)], "grid": [_run(0.8, 3.0)]}},
        {"classification": {"kind": "make_classification", "n_samples": 10}},
    )
    again = Results.from_json(json.loads(json.dumps(results.to_json())))
    assert again == results
