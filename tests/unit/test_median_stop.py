"""The median-stopping rule across trials: the spec (validated, ids unchanged without it), the
rule on stored curves (pure logic), and a trial it stops, scored at its best round so far."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score
from tunefleet_contract.libraries import catalogues
from tunefleet_contract.messages import EarlyStopped, StudyRequest, TrialMessage, TrialSpec
from tunefleet_contract.rules import SpecError
from tunefleet_contract.spec import MedianStopSpec
from tunefleet_publisher.planner import expand, trial_messages
from tunefleet_runtime.validation import parse_spec, scoring_key
from tunefleet_worker.datasets import load_dataset
from tunefleet_worker.earlystop import Curve, run_stopped, summary
from tunefleet_worker.median import MedianRule, median_curve, value_at
from tunefleet_worker.training import TrialContext, library_data, make_estimator

STOP = {"rounds": 5, "max_rounds": 200}
MEDIAN = {"warmup": 3, "after_trials": 2, "rounds": 2}


def _spec(stop: dict[str, Any], library: str = "xgboost", **part: Any) -> dict[str, Any]:
    return {
        "name": "s",
        "dataset": "breast_cancer",
        "search": {library: {"early_stopping": stop, "grid": {"max_depth": [2, 3]}, **part}},
    }


def _summary(means: list[float | None], rounds: list[int] | None = None, **over: Any) -> Any:
    rounds = rounds or list(range(1, len(means) + 1))
    return {
        "metric": "auc",
        "curve_rounds": rounds,
        "curve_mean": means,
        "rounds_trained": rounds[-1],
        **over,
    }


# -- the spec ------------------------------------------------------------------------------


def test_without_median_the_ids_are_those_early_stopping_had_before() -> None:
    # Computed on main before the rule existed (2cc7f85).
    spec = parse_spec(_spec(STOP))
    assert (spec.study_id(), scoring_key(spec)) == ("s-8c03b7c510ed", "49229b5b9994")
    assert "median" not in spec.canonical_json()
    request = StudyRequest(study_id=spec.study_id(), spec=spec, submitted_at=0.0)
    message = trial_messages(request, list(expand(spec, spec.study_id())))[0]
    assert json.loads(message.encode())["early_stopping"] == {"xgboost": STOP | {"metric": None}}


def test_with_median_the_ids_change_and_the_rule_reaches_the_workers() -> None:
    plain, median = parse_spec(_spec(STOP)), parse_spec(_spec({**STOP, "median": MEDIAN}))
    assert scoring_key(plain) != scoring_key(median)
    assert {t.trial_id for t in expand(plain, "x")}.isdisjoint(
        t.trial_id for t in expand(median, "x")
    )
    request = StudyRequest(study_id=median.study_id(), spec=median, submitted_at=0.0)
    message = trial_messages(request, list(expand(median, median.study_id())))[0]
    decoded = TrialMessage.decode(message.encode())
    assert decoded.early_stopping["xgboost"].median == MedianStopSpec(**MEDIAN)


@pytest.mark.parametrize(
    ("stop", "library", "problem"),
    [
        (
            {"rounds": 5, "max_rounds": 20, "median": {"warmup": 19, "after_trials": 3}},
            "xgboost",
            "median: warmup (19) + rounds (1) must be less than max_rounds (20), "
            "or the median rule could never stop a trial",
        ),
        (
            {**STOP, "median": {"warmup": 3, "after_trials": 0}},
            "xgboost",
            "after_trials",
        ),
        ({**STOP, "median": {"after_trials": 3}}, "xgboost", "warmup"),
        ({**STOP, "median": {**MEDIAN, "patience": 2}}, "xgboost", "patience"),
        (
            {**STOP, "median": MEDIAN},
            "catboost",
            "catboost.early_stopping.median: not with catboost: its folds each train to "
            "max_rounds before the curve is known, so stopping a trial early would save nothing",
        ),
    ],
)
def test_a_bad_median_is_refused_with_the_field_and_the_reason(
    stop: dict[str, Any], library: str, problem: str
) -> None:
    part = {"fixed": {"learning_rate": 0.1}} if library == "catboost" else {}
    spec = _spec(stop, library, **part)
    spec["search"][library]["grid"] = {"depth" if library == "catboost" else "max_depth": [2]}
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert problem in str(info.value)


# -- the rule on stored curves -------------------------------------------------------------


def test_a_stored_curve_is_read_at_its_last_stored_round_up_to_r() -> None:
    whole = _summary([0.5, 0.6, 0.7])
    assert [value_at(whole, r) for r in (1, 2, 3, 4)] == [0.5, 0.6, 0.7, None]
    # Downsampled (every 3rd round, plus the best 5 and the last 8): a round not stored
    # takes the last stored value before it; past the rounds trained, none.
    thinned = _summary([0.1, 0.4, 0.6, 0.7, 0.65], [1, 4, 5, 7, 8])
    assert [value_at(thinned, r) for r in (1, 3, 4, 6, 8, 9)] == [0.1, 0.1, 0.4, 0.6, 0.65, None]
    assert value_at(_summary([0.5, None]), 2) is None


def test_the_median_curve_needs_after_trials_curves_reaching_the_round() -> None:
    curves = [
        _summary([0.5, 0.6, 0.75, 0.8]),
        _summary([0.4, 0.5, 0.25]),
        _summary([0.9, 0.9]),
        _summary([0.0, 0.0, 0.0, 0.0], metric="logloss"),  # another metric: not counted
    ]
    assert median_curve(curves, "auc", 2, 5) == [0.5, 0.6, 0.5, None, None]
    assert median_curve(curves, "auc", 1, 5) == [0.5, 0.6, 0.5, 0.8, None]
    assert median_curve(curves, "auc", 4, 3) == [None, None, None]


def test_the_rule_stops_after_rounds_consecutive_rounds_worse_past_the_warmup() -> None:
    rule = MedianRule([0.5] * 10, MedianStopSpec(**MEDIAN), True, trials=2)
    # Rounds 1-3 are the warm-up (never worse); round 4 worse, 5 not (resets), 6 and 7 worse.
    stops = [rule.stops(r, v) for r, v in enumerate([0.1, 0.1, 0.1, 0.4, 0.6, 0.4, 0.4], 1)]
    assert stops == [False, False, False, False, False, False, True]
    lower = MedianRule([0.5] * 10, MedianStopSpec(warmup=0, after_trials=1), False, trials=1)
    assert [lower.stops(1, 0.4), lower.stops(2, 0.5), lower.stops(3, 0.6)] == [False, False, True]


def test_a_round_without_a_median_is_not_a_worse_round() -> None:
    rule = MedianRule([0.5, None, 0.5, 0.5], MedianStopSpec(**MEDIAN | {"warmup": 0}), True, 2)
    assert [rule.stops(r, 0.1) for r in (1, 2, 3, 4, 5)] == [False, False, False, True, False]


def test_the_curve_stops_at_its_best_round_so_far_and_says_the_median_did() -> None:
    spec = parse_spec(_spec({**STOP, "max_rounds": 20, "median": MEDIAN}))
    stop = spec.search["xgboost"].early_stopping
    assert stop is not None and stop.median is not None
    curve = Curve(stop.rounds, greater_is_better=True)
    curve.median = MedianRule([0.9] * 20, stop.median, True, trials=4)
    decisions = [curve.add([v, v]) for v in (0.5, 0.6, 0.55, 0.58, 0.59)]
    # Worse than 0.9 from round 4 (after the 3 warm-up rounds): stopped after round 5, at its
    # best round so far (2), long before the patience of 5 rounds would have.
    assert decisions == [None, None, None, None, 2]
    stopped = summary(curve, catalogues()["xgboost"].eval_metrics["auc"], stop)
    assert (stopped.best_round, stopped.stop_round, stopped.rounds_trained) == (2, 5, 5)
    assert (stopped.stopped_by, stopped.median_trials) == ("median", 4)
    # Stored without the rule's fields where it was off: a collector of the release before
    # decodes it.
    off = EarlyStopped(**{**stopped.model_dump(), "stopped_by": None, "median_trials": None})
    assert off.stopped_by is None


def test_a_trial_worse_than_the_median_stops_and_scores_as_its_best_round() -> None:
    data = load_dataset(parse_spec(_spec(STOP)).dataset)
    spec = parse_spec(_spec({"rounds": 10, "max_rounds": 100, "median": MEDIAN}))
    stop = spec.search["xgboost"].early_stopping
    assert stop is not None
    ctx = TrialContext("s", data, "roc_auc", 3, 3, "local", 1, 1)
    good = TrialSpec(trial_id="a" * 24, library="xgboost", params={"max_depth": 3})
    bad = TrialSpec(
        trial_id="b" * 24,
        library="xgboost",
        params={"max_depth": 1, "learning_rate": 0.01, "colsample_bytree": 0.1},
    )
    first = run_stopped(ctx, good, stop, finished=[])
    assert first.early_stopping is not None
    assert (first.early_stopping.stopped_by, first.early_stopping.median_trials) == (None, 0)
    curves = [first.early_stopping.model_dump()] * 2
    result = run_stopped(ctx, bad, stop, finished=curves)
    stopped = result.early_stopping
    assert result.status == "done" and stopped is not None
    assert (stopped.stopped_by, stopped.median_trials) == ("median", 2)
    assert stopped.stop_round == stopped.rounds_trained == MEDIAN["warmup"] + MEDIAN["rounds"]
    # Scored at its best round so far, as GridSearchCV scores that many rounds.
    view = library_data(data, "xgboost")
    estimator = make_estimator(
        "xgboost", data.task, {**bad.params, "n_estimators": stopped.best_round}
    )
    folds = StratifiedKFold(3, shuffle=True, random_state=3)
    expected = cross_val_score(estimator, view.X, view.y, cv=folds, scoring="roc_auc").mean()
    assert result.score == pytest.approx(expected, abs=1e-12)
    # Without the rule's input (no store) the same trial runs to its own stop.
    alone = run_stopped(ctx, bad, stop)
    assert alone.early_stopping is not None and alone.early_stopping.median_trials is None
    assert alone.early_stopping.rounds_trained > stopped.rounds_trained


def test_the_store_gives_the_curves_of_trials_that_ran_to_their_own_end() -> None:
    from tunefleet_contract.messages import TrialResult
    from tunefleet_runtime.store.memory import MemoryStore

    def result(trial_id: str, library: str, **stop: Any) -> TrialResult:
        summary = EarlyStopped(
            metric="auc",
            greater_is_better=True,
            rounds=2,
            max_rounds=10,
            best_round=1,
            stop_round=3,
            rounds_trained=3,
            curve_rounds=[1, 2, 3],
            curve_mean=[0.9, 0.8, 0.7],
            curve_std=[0.0, 0.0, 0.0],
            **stop,
        )
        return TrialResult(
            study_id="s",
            trial_id=trial_id,
            library=library,
            params={},
            status="done",
            score=0.9,
            finished_at=1.0,
            early_stopping=summary,
        )

    store = MemoryStore()
    store.write_events(
        [
            result("a" * 24, "xgboost"),
            result("b" * 24, "xgboost", stopped_by="median", median_trials=1),
            result("c" * 24, "lightgbm"),
        ]
    )
    found = store.finished_curves("s", 0, "xgboost")
    assert [f["curve_mean"] for f in found] == [[0.9, 0.8, 0.7]]
    assert store.finished_curves("s", 1, "xgboost") == []
