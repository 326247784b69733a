"""Families: one fit per fold at the largest rounds scores every member bit for bit as training
it alone would, and as GridSearchCV reports; the excluded cases fall back to separate fits.

Subsampling is on in every grid (rows and columns), so a truncated model that did not replay
the very random draws of a shorter training would show here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tunefleet_contract.families import families, rounds_of
from tunefleet_contract.messages import TrialSpec
from tunefleet_contract.params import ParamError, check_param
from tunefleet_contract.spec import BuiltinDataset
from tunefleet_publisher.planner import expand
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker import training as training_module
from tunefleet_worker.datasets import Dataset, load_dataset
from tunefleet_worker.families import run_family, truncated
from tunefleet_worker.training import TrialContext, fit_fold, make_estimator, run_trial

from tests.support.reference import gridsearch_means, local_study, params_key

ROUNDS = [3, 8, 5]

SUBSAMPLED: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
    "xgboost": (
        {"subsample": 0.7, "colsample_bytree": 0.6, "max_depth": 3, "random_state": 5},
        {"n_estimators": ROUNDS, "learning_rate": [0.3]},
    ),
    "lightgbm": (
        {
            "subsample": 0.7,
            "subsample_freq": 1,
            "colsample_bytree": 0.6,
            "num_leaves": 7,
            "min_child_samples": 5,
            "random_state": 5,
        },
        {"n_estimators": ROUNDS, "learning_rate": [0.3]},
    ),
    "catboost": (
        {"rsm": 0.6, "subsample": 0.7, "bootstrap_type": "Bernoulli", "depth": 3},
        {"iterations": ROUNDS, "learning_rate": [0.3]},
    ),
}

# Where cutting a longer model is not the shorter model: these never form a family.
EXCLUDED: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
    "xgboost-gblinear": ({"booster": "gblinear"}, {"n_estimators": ROUNDS}),
    "xgboost-dart": ({"booster": "dart", "subsample": 0.7}, {"n_estimators": ROUNDS}),
    "lightgbm-dart": ({"boosting_type": "dart", "num_leaves": 7}, {"n_estimators": ROUNDS}),
    "catboost-no-learning-rate": ({"depth": 3, "rsm": 0.6}, {"iterations": ROUNDS}),
}

CASES = [
    ("breast_cancer", "roc_auc"),  # binary, predict_proba
    ("iris", "accuracy"),  # three classes, predict
    ("diabetes", "neg_root_mean_squared_error"),  # regression
]


def _study(
    library: str, fixed: dict[str, Any], grid: dict[str, Any], dataset: str, metric: str
) -> tuple[TrialContext, list[TrialSpec], Dataset]:
    return local_study(library, fixed, grid, dataset, metric, study_id="families")


def _grid(library: str, fixed: dict[str, Any], grid: dict[str, list[Any]]) -> list[TrialSpec]:
    study = parse_spec({"dataset": "iris", "search": {library: {"fixed": fixed, "grid": grid}}})
    return list(expand(study, "s"))


def test_trials_differing_only_in_rounds_form_a_family() -> None:
    trials = _grid(
        "xgboost",
        {"subsample": 0.8},
        {"n_estimators": [10, 50, 20], "max_depth": [2, 3], "learning_rate": [0.1, 0.3]},
    )
    groups = families(trials)
    assert len(groups) == 4
    for group in groups:
        assert [t.params["n_estimators"] for t in group] == [10, 50, 20]
        rest = [{k: v for k, v in t.params.items() if k != "n_estimators"} for t in group]
        assert rest == [rest[0]] * 3
    assert sorted(t.trial_id for g in groups for t in g) == sorted(t.trial_id for t in trials)


@pytest.mark.parametrize(
    ("library", "params", "rounds"),
    [
        ("xgboost", {"n_estimators": 30, "subsample": 0.5}, ("n_estimators", 30)),
        ("xgboost", {"n_estimators": 30, "booster": "gbtree"}, ("n_estimators", 30)),
        ("xgboost", {"n_estimators": 30, "booster": "dart"}, None),
        ("xgboost", {"n_estimators": 30, "booster": "gblinear"}, None),
        ("xgboost", {"max_depth": 3}, None),  # the library's default rounds: nothing to share
        ("lightgbm", {"n_estimators": 30, "boosting_type": "rf"}, ("n_estimators", 30)),
        ("lightgbm", {"n_estimators": 30, "boosting_type": "dart"}, None),
        ("catboost", {"iterations": 30, "learning_rate": 0.1}, ("iterations", 30)),
        ("catboost", {"n_estimators": 30, "learning_rate": 0.1}, ("n_estimators", 30)),
        ("catboost", {"iterations": 30}, None),  # CatBoost picks its rate from the iterations
        ("noop", {"x": 1.0}, None),
    ],
)
def test_rounds_of_says_where_truncation_is_exact(
    library: str, params: dict[str, Any], rounds: tuple[str, int] | None
) -> None:
    assert rounds_of(library, params) == rounds


def test_excluded_trials_and_different_values_stay_apart() -> None:
    dart = _grid("lightgbm", {"boosting_type": "dart"}, {"n_estimators": [10, 20]})
    assert [len(g) for g in families(dart)] == [1, 1]
    catboost = _grid("catboost", {}, {"iterations": [10, 20]})
    assert [len(g) for g in families(catboost)] == [1, 1]
    # 1 and 1.0 are different values to a library: different families.
    typed = _grid("xgboost", {}, {"n_estimators": [10, 20], "min_child_weight": [1, 1.0]})
    assert [len(g) for g in families(typed)] == [2, 2]


@pytest.mark.parametrize(
    ("library", "name"),
    [
        ("xgboost", "early_stopping_rounds"),
        ("lightgbm", "early_stopping_round"),
        ("catboost", "early_stopping_rounds"),
        ("catboost", "od_wait"),
    ],
)
def test_no_trial_can_stop_early_so_no_family_has_to_exclude_it(library: str, name: str) -> None:
    # Early stopping makes the rounds depend on the data: a cut model would not be the same.
    with pytest.raises(ParamError):
        check_param(library, name, 5)


@pytest.mark.parametrize("library", sorted(SUBSAMPLED))
@pytest.mark.parametrize(("dataset", "metric"), CASES)
def test_family_scores_equal_separate_fits_and_gridsearchcv(
    library: str, dataset: str, metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed, grid = SUBSAMPLED[library]
    ctx, trials, data = _study(library, fixed, grid, dataset, metric)
    [family] = families(trials)
    assert len(family) == len(ROUNDS)

    fits: list[dict[str, Any]] = []

    def counting_fit(*args: Any) -> Any:
        fits.append(dict(args[2]))
        return fit_fold(*args)

    # The family fits through `fit_fold_rounds`, which fits with `fit_fold` (no round cut here).
    monkeypatch.setattr(training_module, "fit_fold", counting_fit)
    shared = run_family(ctx, family)
    monkeypatch.undo()
    alone = [run_trial(ctx, t) for t in family]
    expected = gridsearch_means(library, data, fixed, grid, metric=metric, folds=3, seed=7)

    # One fit per fold, at the largest rounds.
    assert len(fits) == 3
    assert {f[next(iter(grid))] for f in fits} == {max(ROUNDS)}
    for result, single, trial in zip(shared, alone, family, strict=True):
        assert result.trial_id == trial.trial_id and result.params == trial.params
        assert result.status == single.status == "done", result.error or single.error
        assert result.fold_scores == single.fold_scores  # bit for bit, every fold
        assert result.score == single.score == expected[params_key(trial.params)]
        assert result.fit_shared_by == len(ROUNDS) and single.fit_shared_by == 1
    # Shared fits are split evenly: the members' parts add up to the fits' time.
    assert len({r.fit_time_s for r in shared}) == 1
    # The members really differ: a family that scored its largest model for all would not.
    assert len({r.score for r in shared}) > 1


@pytest.mark.parametrize("case", sorted(EXCLUDED))
def test_excluded_cases_fall_back_to_separate_fits(case: str) -> None:
    library = case.split("-")[0]
    fixed, grid = EXCLUDED[case]
    dataset, metric = CASES[0] if library != "xgboost" else CASES[2]
    ctx, trials, data = _study(library, fixed, grid, dataset, metric)
    groups = families(trials)
    assert [len(g) for g in groups] == [1] * len(ROUNDS)
    results = [r for g in groups for r in run_family(ctx, g)]
    expected = gridsearch_means(library, data, fixed, grid, metric=metric, folds=3, seed=7)
    for result in results:
        assert result.status == "done", result.error
        assert result.score == expected[params_key(result.params)]
        assert result.fit_shared_by == 1


@pytest.mark.parametrize(
    ("library", "params", "rounds"),
    [
        ("lightgbm", {"boosting_type": "dart", "num_leaves": 7}, "n_estimators"),
        ("catboost", {"depth": 3}, "iterations"),
        ("xgboost", {"booster": "gblinear"}, "n_estimators"),
    ],
)
def test_why_they_are_excluded_a_cut_model_differs(
    library: str, params: dict[str, Any], rounds: str
) -> None:
    # The evidence behind rounds_of's exclusions: cutting 50 rounds to 20 is not training 20.
    data = load_dataset(BuiltinDataset(name="breast_cancer"))
    short = make_estimator(library, data.task, {**params, rounds: 20}).fit(data.X, data.y)
    long = make_estimator(library, data.task, {**params, rounds: 50}).fit(data.X, data.y)
    with truncated(long, library, 20) as cut:
        assert not np.array_equal(cut.predict_proba(data.X), short.predict_proba(data.X))


@pytest.mark.parametrize(
    ("library", "params", "rounds"),
    [
        ("xgboost", {"num_parallel_tree": 3, "subsample": 0.7}, "n_estimators"),
        (
            "xgboost",
            {"grow_policy": "lossguide", "max_leaves": 8, "tree_method": "approx"},
            "n_estimators",
        ),
        (
            "lightgbm",
            {"boosting_type": "rf", "subsample": 0.7, "subsample_freq": 1},
            "n_estimators",
        ),
        ("lightgbm", {"extra_trees": True, "colsample_bytree": 0.5}, "n_estimators"),
        ("catboost", {"learning_rate": 0.1, "boosting_type": "Ordered"}, "iterations"),
        (
            "catboost",
            {"learning_rate": 0.1, "grow_policy": "Lossguide", "max_leaves": 8},
            "iterations",
        ),
        (
            "catboost",
            {"learning_rate": 0.1, "bootstrap_type": "MVS", "subsample": 0.6},
            "n_estimators",
        ),
    ],
)
def test_modes_that_do_form_families_cut_exactly(
    library: str, params: dict[str, Any], rounds: str
) -> None:
    # The other side of the evidence: modes a family may use, each checked rather than assumed.
    assert rounds_of(library, {**params, rounds: 20}) == (rounds, 20)
    data = load_dataset(BuiltinDataset(name="breast_cancer"))
    short = make_estimator(library, data.task, {**params, rounds: 20}).fit(data.X, data.y)
    long = make_estimator(library, data.task, {**params, rounds: 50}).fit(data.X, data.y)
    with truncated(long, library, 20) as cut:
        assert np.array_equal(cut.predict_proba(data.X), short.predict_proba(data.X))


def test_truncated_view_is_the_estimator_and_is_restored() -> None:
    data = load_dataset(BuiltinDataset(name="iris"))
    model = make_estimator("xgboost", data.task, {"n_estimators": 6}).fit(data.X, data.y)
    short = make_estimator("xgboost", data.task, {"n_estimators": 2}).fit(data.X, data.y)
    full = model.predict_proba(data.X)
    with truncated(model, "xgboost", 2) as view:
        assert view is model
        assert np.array_equal(view.predict_proba(data.X), short.predict_proba(data.X))
        assert np.array_equal(view.predict(data.X), short.predict(data.X))
    assert "predict" not in vars(model) and "predict_proba" not in vars(model)
    assert np.array_equal(model.predict_proba(data.X), full)


def test_a_library_error_fails_every_member_with_it() -> None:
    grid = {"n_estimators": [2, 4], "objective": ["no-such-objective"]}
    ctx, trials, _ = _study("lightgbm", {}, grid, "iris", "accuracy")
    [family] = families(trials)
    results = run_family(ctx, family)
    assert [r.trial_id for r in results] == [t.trial_id for t in family]
    assert results[0].error is not None and results[0].error.startswith("LightGBMError")
    for result in results:
        assert result.status == "failed" and result.reason == "training-error"
        assert result.error == results[0].error and result.fit_shared_by == 2
