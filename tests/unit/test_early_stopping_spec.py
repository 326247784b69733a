"""`early_stopping` in a spec: what it refuses, how it reaches the workers, and that a study
without it keeps its ids and its messages' bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tunefleet_contract.libraries import catalogues
from tunefleet_contract.messages import (
    EarlyStopped,
    ModelRefit,
    ModelStored,
    StudyRequest,
    TrialMessage,
    TrialResult,
)
from tunefleet_contract.spec import SpecError
from tunefleet_publisher.planner import expand, trial_messages
from tunefleet_runtime.validation import parse_spec, scoring_key

STOP = {"rounds": 5, "max_rounds": 200}


def _spec(library: str, part: dict[str, Any], **over: Any) -> dict[str, Any]:
    return {"dataset": "breast_cancer", "search": {library: part}, **over}


def _problem(spec: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return str(info.value)


@pytest.mark.parametrize(
    ("library", "part", "expected"),
    [
        (
            "xgboost",
            {"early_stopping": STOP, "fixed": {"n_estimators": 10}},
            "xgboost.fixed.n_estimators: set by early_stopping",
        ),
        (
            "catboost",
            {"early_stopping": STOP, "fixed": {"learning_rate": 0.1}, "grid": {"iterations": [5]}},
            "catboost.grid.iterations: set by early_stopping",
        ),
        (
            "lightgbm",
            {
                "early_stopping": STOP,
                "random": {"n_trials": 2, "space": {"n_estimators": {"int": [5, 50]}}},
            },
            "lightgbm.random.space.n_estimators: set by early_stopping",
        ),
        (
            "xgboost",
            {"early_stopping": STOP, "grid": {"booster": ["gbtree", "dart"]}},
            "xgboost.grid.booster: 'dart' is not with early_stopping",
        ),
        (
            "lightgbm",
            {
                "early_stopping": STOP,
                "tpe": {"n_trials": 4, "space": {"boosting_type": {"choice": ["gbdt", "dart"]}}},
            },
            "lightgbm.tpe.space.boosting_type: 'dart' is not with early_stopping",
        ),
        ("catboost", {"early_stopping": STOP}, "catboost.early_stopping: needs learning_rate"),
        ("noop", {"early_stopping": STOP}, "noop.early_stopping: noop has no boosting rounds"),
        (
            "xgboost",
            {"early_stopping": {**STOP, "metric": "rmse"}},
            "xgboost.early_stopping.metric: 'rmse' is a regression metric; the study is "
            "classification",
        ),
        (
            "lightgbm",
            {"early_stopping": {**STOP, "metric": "binary_loss"}},
            "unknown lightgbm eval metric 'binary_loss' (did you mean 'binary_logloss'?)",
        ),
        (
            "xgboost",
            {"early_stopping": {"rounds": 0, "max_rounds": 10}},
            "early_stopping.rounds: Input should be greater than or equal to 1",
        ),
        (
            "xgboost",
            {"early_stopping": {"rounds": 3, "max_rounds": 100_001}},
            "early_stopping.max_rounds: Input should be less than or equal to 100000",
        ),
        (
            "xgboost",
            {"early_stopping": {"rounds": 3, "max_rounds": 10, "patience": 2}},
            "early_stopping.patience: Extra inputs are not permitted",
        ),
    ],
)
def test_refused_with_the_field_and_the_reason(
    library: str, part: dict[str, Any], expected: str
) -> None:
    assert expected in _problem(_spec(library, part))


def test_asha_is_refused_in_one_line_that_says_why() -> None:
    asha = {
        "n_trials": 4,
        "min_rounds": 2,
        "max_rounds": 18,
        "space": {"max_depth": {"int": [2, 5]}},
    }
    problem = _problem(_spec("xgboost", {"early_stopping": STOP, "asha": asha}))
    assert problem == (
        "search: xgboost.early_stopping: not with asha: its rungs set the rounds that early "
        "stopping would choose (use tpe or random with early stopping)"
    )


def test_every_catalogued_default_metric_is_one_of_its_eval_metrics() -> None:
    for name, catalogue in catalogues().items():
        if not catalogue.eval_metrics:
            continue
        for kind, metric in catalogue.loss_metrics.items():
            assert kind in catalogue.eval_metric("explained_variance", kind).kinds, name
            assert catalogue.eval_metrics[metric].greater_is_better is False
        for scorer, by_kind in catalogue.scorer_metrics.items():
            for kind in by_kind:
                assert catalogue.eval_metric(scorer, kind).name == by_kind[kind]
    xgb = catalogues()["xgboost"]
    assert xgb.eval_metric("roc_auc", "binary").name == "auc"
    assert xgb.eval_metric("roc_auc", "binary").greater_is_better
    assert xgb.eval_metric("f1", "multiclass").name == "mlogloss"  # no match: the loss
    with pytest.raises(ValueError, match="'auc_mu' is for multiclass models, not binary"):
        catalogues()["lightgbm"].eval_metric("accuracy", "binary", "auc_mu")


def test_a_study_without_it_keeps_its_ids_and_its_messages() -> None:
    plain = parse_spec(_spec("xgboost", {"grid": {"max_depth": [2, 3]}}, chunk_size=10))
    assert "early_stopping" not in plain.canonical_json()
    # The ids this spec has had since before early stopping existed (computed on main).
    plain = parse_spec(_spec("xgboost", {"grid": {"max_depth": [2, 3]}}))
    assert (plain.study_id(), scoring_key(plain)) == ("study-bb93636a2413", "1b92a1a668d2")
    plain = plain.model_copy(update={"chunk_size": 10})
    request = StudyRequest(study_id=plain.study_id(), spec=plain, submitted_at=0.0)
    (message,) = trial_messages(request, list(expand(plain, plain.study_id())))
    assert "early_stopping" not in json.loads(message.encode())
    assert TrialMessage.decode(message.encode()).encode() == message.encode()


def test_it_changes_the_study_and_the_trial_ids_and_reaches_the_workers() -> None:
    part = {"fixed": {"max_depth": 3}, "grid": {"learning_rate": [0.1, 0.3]}}
    plain = parse_spec(_spec("xgboost", part, name="s"))
    stopped = parse_spec(
        _spec("xgboost", {**part, "early_stopping": STOP}, name="s", chunk_size=10)
    )
    assert scoring_key(plain) != scoring_key(stopped)
    plain_ids = {t.trial_id for t in expand(plain, "same")}
    stopped_trials = list(expand(stopped, "same"))
    # Same study id (a resume --spec keeps it), other trial ids: another way of scoring.
    assert plain_ids.isdisjoint(t.trial_id for t in stopped_trials)
    assert [t.params for t in stopped_trials] == [
        {"max_depth": 3, "learning_rate": 0.1},
        {"max_depth": 3, "learning_rate": 0.3},
    ]
    request = StudyRequest(study_id=stopped.study_id(), spec=stopped, submitted_at=0.0)
    (message,) = trial_messages(request, stopped_trials)
    decoded = TrialMessage.decode(message.encode())
    assert decoded.early_stopping["xgboost"].max_rounds == 200
    assert decoded.early_stopping["xgboost"].rounds == 5


def _stopped(**over: Any) -> dict[str, Any]:
    return {
        "metric": "logloss",
        "greater_is_better": False,
        "rounds": 2,
        "max_rounds": 10,
        "best_round": 3,
        "stop_round": 5,
        "rounds_trained": 5,
        "best_value": 0.2,
        "curve_rounds": [1, 2, 3, 4, 5],
        "curve_mean": [0.5, 0.3, 0.2, 0.25, None],
        "curve_std": [0.1, 0.1, 0.0, 0.1, None],
        **over,
    }


def test_a_result_carries_its_curve_and_refuses_an_incoherent_one() -> None:
    result = TrialResult(
        study_id="s",
        trial_id="a" * 24,
        library="xgboost",
        params={},
        status="done",
        finished_at=1.0,
        early_stopping=EarlyStopped(**_stopped()),
    )
    assert TrialResult.decode(result.encode()) == result
    plain = result.model_copy(update={"early_stopping": None})
    assert "early_stopping" not in json.loads(plain.encode())
    with pytest.raises(ValueError, match="equal lengths"):
        EarlyStopped(**_stopped(curve_std=[0.1]))
    with pytest.raises(ValueError, match="best_round <= stop_round <= rounds_trained"):
        EarlyStopped(**_stopped(best_round=6))


def test_refit_and_model_say_the_rounds_only_when_early_stopping_chose_them() -> None:
    refit = {
        "study_id": "s",
        "trial_id": "a" * 24,
        "library": "xgboost",
        "params": {},
        "dataset": {"kind": "builtin", "name": "iris"},
        "task": "classification",
        "requested_at": 0.0,
    }
    assert "best_round" not in json.loads(ModelRefit(**refit).encode())
    assert ModelRefit.decode(ModelRefit(**refit, best_round=7).encode()).best_round == 7
    stored = ModelStored(
        study_id="s",
        trial_id="a" * 24,
        library="xgboost",
        params={},
        status="done",
        dataset=refit["dataset"],
        finished_at=0.0,
    )
    assert "rounds" not in json.loads(stored.encode())


def test_show_draws_the_curve_and_marks_the_best_round() -> None:
    from tunefleet.cli.results import _stopping_rows

    means = [0.5 + 0.01 * r for r in range(1, 31)] + [0.8 - 0.001 * r for r in range(1, 11)]
    stop = _stopped(
        metric="auc",
        greater_is_better=True,
        best_round=30,
        stop_round=40,
        rounds_trained=40,
        max_rounds=100,
        rounds=10,
        best_value=0.8,
        curve_rounds=list(range(1, 41)),
        curve_mean=means,
        curve_std=[0.0] * 40,
    )
    rows = dict(_stopping_rows(stop))
    assert rows["early stopping"] == (
        "best round 30 (stopped after 40, 40 trained, limit 100, patience 10)"
    )
    bars = rows["  curve"].split()[0]
    marker = rows[""]
    assert len(bars) == 40 and bars[29] == "█"  # the best mean is the highest bar
    assert marker.index("^") == 29 and marker.endswith("^ 30")
    # Lower is better: the bars are turned over, so the best is still the highest.
    lower = dict(
        _stopping_rows({**stop, "greater_is_better": False, "curve_mean": [-m for m in means]})
    )
    assert lower["  curve"].split()[0] == bars
