"""Early stopping across folds: the best round is the one the libraries' own cv finds, and the
score is GridSearchCV's `mean_test_score` with the rounds set to that best round, bit for bit.

Subsampling (rows and columns) is on everywhere: a fold model that did not replay the draws of
training that fold alone would show in the score. The references are computed here without the
worker's code: each fold's own evaluation history from the plain scikit-learn estimator, the
rule applied to their mean, `xgb.cv` / `lgb.cv`, and GridSearchCV.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tunefleet.client import Client
from tunefleet.models import load_estimator
from tunefleet_contract.libraries import catalogues
from tunefleet_contract.messages import ModelRefit, StudyRegistered, TrialResult, TrialSpec
from tunefleet_contract.spec import EarlyStoppingSpec
from tunefleet_publisher.planner import expand
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.memory import MemoryBlobStore, MemoryStore
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker.datasets import Dataset, from_frame, load_dataset
from tunefleet_worker.earlystop import Curve, _lockstep, run_stopped, summary
from tunefleet_worker.foldcache import fold_set
from tunefleet_worker.refit import model_identity, refit
from tunefleet_worker.training import TrialContext, library_data, make_estimator

from tests.support.reference import gridsearch_means, params_key
from tests.support.tables import mixed_table

STOP = EarlyStoppingSpec(rounds=4, max_rounds=60)

SUBSAMPLED: dict[str, dict[str, Any]] = {
    "xgboost": {
        "subsample": 0.7,
        "colsample_bytree": 0.6,
        "max_depth": 3,
        "learning_rate": 0.3,
        "random_state": 5,
    },
    "lightgbm": {
        "subsample": 0.7,
        "subsample_freq": 1,
        "colsample_bytree": 0.6,
        "num_leaves": 7,
        "min_child_samples": 5,
        "learning_rate": 0.3,
        "random_state": 5,
    },
    "catboost": {
        "rsm": 0.6,
        "subsample": 0.7,
        "bootstrap_type": "Bernoulli",
        "depth": 3,
        "learning_rate": 0.3,
    },
}

CASES = [
    ("breast_cancer", "neg_log_loss"),  # binary
    ("iris", "accuracy"),  # three classes
    ("diabetes", "neg_root_mean_squared_error"),  # regression
]


def _context(library: str, data: Dataset, metric: str) -> tuple[TrialContext, TrialSpec]:
    ctx = TrialContext(
        study_id="early",
        dataset=data,
        metric=metric,
        folds=3,
        seed=7,
        worker="test",
        attempts=1,
        threads=1,
        early_stopping={library: STOP},
    )
    return ctx, TrialSpec(trial_id="e" * 24, library=library, params=SUBSAMPLED[library])


def _fold_histories(library: str, data: Dataset, metric_name: str) -> list[list[float]]:
    """Each fold's validation history, trained alone to the limit with the plain estimator."""
    rounds = catalogues()[library].rounds[0]
    params = {**SUBSAMPLED[library], rounds: STOP.max_rounds}
    histories = []
    for train, test in fold_set(data, 3, 7).splits:
        estimator = make_estimator(library, data.task, params)
        X_train, y_train, X_test, y_test = data.X[train], data.y[train], data.X[test], data.y[test]
        if library == "xgboost":
            estimator.set_params(eval_metric=metric_name)
            estimator.fit(X_train, y_train, eval_set=[(X_test, y_test)], verbose=False)
            histories.append(estimator.evals_result()["validation_0"][metric_name])
        elif library == "lightgbm":
            estimator.fit(
                X_train, y_train, eval_X=(X_test,), eval_y=(y_test,), eval_metric=metric_name
            )
            histories.append(estimator.evals_result_["valid_0"][metric_name])
        else:
            estimator.set_params(eval_metric=metric_name, use_best_model=False)
            estimator.fit(X_train, y_train, eval_set=(X_test, y_test))
            histories.append(estimator.get_evals_result()["validation"][metric_name])
    return histories


def _rule(histories: list[list[float]], patience: int, greater: bool) -> int:
    """The documented rule, written out once more: first round of the best mean, stopping
    `patience` rounds after it."""
    best, best_mean = 0, None
    for r, values in enumerate(zip(*histories, strict=True), start=1):
        mean = float(np.mean(values))
        if best_mean is None or (mean > best_mean if greater else mean < best_mean):
            best, best_mean = r, mean
        elif r - best >= patience:
            break
    return best


def _run(library: str, dataset: str, metric: str) -> tuple[TrialResult, Dataset]:
    data = library_data(load_dataset(load_spec_dataset(dataset)), library)
    ctx, trial = _context(library, data, metric)
    result = run_stopped(ctx, trial, STOP)
    assert result.status == "done", result.error
    return result, data


def load_spec_dataset(name: str) -> Any:
    from tunefleet_contract.spec import BuiltinDataset

    return BuiltinDataset(name=name)  # type: ignore[arg-type]


@pytest.mark.parametrize("library", list(SUBSAMPLED))
@pytest.mark.parametrize(("dataset", "metric"), CASES)
def test_best_round_is_the_mean_curves_and_the_score_gridsearchs(
    library: str, dataset: str, metric: str
) -> None:
    result, data = _run(library, dataset, metric)
    stopped = result.early_stopping
    assert stopped is not None
    histories = _fold_histories(library, data, stopped.metric)
    best = _rule(histories, STOP.rounds, stopped.greater_is_better)
    assert stopped.best_round == best
    # Stopped early where the curve allowed it; lock-step libraries trained no further.
    assert stopped.stop_round == min(best + STOP.rounds, STOP.max_rounds)
    lockstep = library != "catboost"
    assert stopped.rounds_trained == (stopped.stop_round if lockstep else STOP.max_rounds)
    assert stopped.curve_rounds == list(range(1, stopped.rounds_trained + 1))
    means = [float(np.mean(v)) for v in zip(*histories, strict=True)]
    assert stopped.curve_mean == means[: stopped.rounds_trained]
    assert stopped.best_value == means[best - 1]
    rounds = catalogues()[library].rounds[0]
    fixed = SUBSAMPLED[library]
    reference = gridsearch_means(
        library, data, fixed, {rounds: [best]}, metric=metric, folds=3, seed=7
    )
    assert result.score == reference[params_key({**fixed, rounds: best})]
    assert rounds not in result.params  # the rounds are the curve's, not the trial's


def _xgb_cv_best(data: Dataset, params: dict[str, Any], metric: str) -> int:
    import xgboost

    estimator = make_estimator("xgboost", data.task, params)
    native = {k: v for k, v in estimator.get_xgb_params().items() if v is not None}
    if data.task == "classification" and len(data.classes) > 2:
        native.update(objective="multi:softprob", num_class=len(data.classes))
    elif data.task == "classification":
        native["objective"] = "binary:logistic"
    native["eval_metric"] = metric
    history = xgboost.cv(
        native,
        xgboost.DMatrix(data.X, data.y),
        num_boost_round=STOP.max_rounds,
        folds=fold_set(data, 3, 7).splits,
        early_stopping_rounds=STOP.rounds,
    )
    return len(history)


def _lgb_cv_best(data: Dataset, params: dict[str, Any], metric: str) -> int:
    import lightgbm

    estimator = make_estimator("lightgbm", data.task, params)
    classes = len(data.classes)
    estimator._n_classes = classes
    estimator._objective = (
        "regression" if data.task == "regression" else "binary" if classes <= 2 else "multiclass"
    )
    native = {**estimator._process_params(stage="fit"), "metric": metric}
    if classes > 2:
        native["num_class"] = classes
    result = lightgbm.cv(
        native,
        lightgbm.Dataset(data.X, data.y),
        num_boost_round=STOP.max_rounds,
        folds=fold_set(data, 3, 7).splits,
        callbacks=[lightgbm.early_stopping(STOP.rounds, verbose=False)],
        return_cvbooster=True,
    )
    return int(result["cvbooster"].best_iteration)


def _few_levels(data: Dataset) -> Dataset:
    """The data with each feature on a few integer levels: LightGBM's bins are then the same
    whether built on all rows (lgb.cv) or on a fold's training rows (GridSearchCV, the worker)."""
    X = np.round(data.X / data.X.std(axis=0) * 2)
    return Dataset(X=X, y=data.y, task=data.task, classes=data.classes)


@pytest.mark.parametrize(("dataset", "metric"), CASES)
def test_lightgbm_best_round_equals_lgb_cv(dataset: str, metric: str) -> None:
    data = _few_levels(load_dataset(load_spec_dataset(dataset)))
    ctx, trial = _context("lightgbm", data, metric)
    result = run_stopped(ctx, trial, STOP)
    assert result.status == "done", result.error
    assert result.early_stopping is not None
    best = _lgb_cv_best(data, SUBSAMPLED["lightgbm"], result.early_stopping.metric)
    assert result.early_stopping.best_round == best


@pytest.mark.parametrize(("dataset", "metric"), CASES)
def test_xgboost_best_round_equals_xgb_cv(dataset: str, metric: str) -> None:
    # Without row sampling: xgb.cv interleaves its folds' rounds on one thread, whose sampling
    # generator they then share, so with subsampling its fold models are not the ones training
    # each fold alone (GridSearchCV's) builds; the test above covers subsampling.
    data = load_dataset(load_spec_dataset(dataset))
    params = {"max_depth": 3, "learning_rate": 0.3, "random_state": 5}
    ctx, trial = _context("xgboost", data, metric)
    trial = TrialSpec(trial_id=trial.trial_id, library="xgboost", params=params)
    result = run_stopped(ctx, trial, STOP)
    assert result.status == "done", result.error
    assert result.early_stopping is not None
    assert result.early_stopping.best_round == _xgb_cv_best(
        data, params, result.early_stopping.metric
    )


def test_a_long_curve_is_stored_downsampled_with_its_best_and_last_round() -> None:
    curve = Curve(patience=2000, greater_is_better=True)
    for r in range(1, 1201):
        curve.add([-abs(r - 777) / 1000.0, float("nan") if r == 4 else 0.0])
    metric = catalogues()["xgboost"].eval_metrics["auc"]
    stored = summary(curve, metric, EarlyStoppingSpec(rounds=2000, max_rounds=5000))
    assert stored.best_round == 777
    assert stored.best_value == 0.0
    assert stored.curve_rounds[:3] == [1, 4, 7]  # every ceil(1200 / 500) = 3rd round
    assert 777 in stored.curve_rounds and stored.curve_rounds[-1] == 1200
    assert len(stored.curve_rounds) == 400 + 2  # and round 777 (the best) and 1200
    # A NaN round is stored as None (no store keeps NaN), and never counted as the best.
    assert stored.curve_mean[1] is None
    assert stored.curve_std[1] is None


def test_a_short_curve_is_stored_whole() -> None:
    curve = Curve(patience=2, greater_is_better=False)
    stops = [curve.add(values) for values in ([3.0, 5.0], [2.0, 2.0], [2.0, 2.0], [1.0, 3.5])]
    # Round 3 ties the best mean (2.0), which is no improvement; round 4 is the second round
    # without one: stop, best round 2.
    assert stops == [None, None, None, 2]
    stored = summary(curve, catalogues()["lightgbm"].eval_metrics["rmse"], STOP)
    assert stored.curve_rounds == [1, 2, 3, 4]
    assert stored.curve_mean == [4.0, 2.0, 2.0, 2.25]
    assert stored.curve_std == [1.0, 0.0, 0.0, 1.25]


def test_a_fold_that_fails_fails_them_all_without_hanging() -> None:
    curve = Curve(patience=100, greater_is_better=True)

    def fit(i: int, after_round: Any) -> str:
        for r in range(10):
            if i == 1 and r == 3:
                raise RuntimeError("fold 1 broke")
            after_round(float(r))
        return f"model {i}"

    with pytest.raises(RuntimeError, match="fold 1 broke"):
        _lockstep(3, curve, fit, 10)
    assert len(curve.means) == 3  # the rounds every fold finished


def test_a_fold_that_ends_on_its_own_fails_the_trial_without_hanging() -> None:
    curve = Curve(patience=100, greater_is_better=True)

    def fit(i: int, after_round: Any) -> str:
        for r in range(2 if i == 0 else 10):
            after_round(float(r))
        return f"model {i}"

    with pytest.raises(RuntimeError, match="fold 0 stopped training by itself after 2 rounds"):
        _lockstep(3, curve, fit, 10)


def test_folds_advance_together_one_at_a_time() -> None:
    curve = Curve(patience=2, greater_is_better=True)
    order: list[tuple[int, int]] = []

    def fit(i: int, after_round: Any) -> int:
        r = 0
        while True:
            order.append((i, r))
            r += 1
            if after_round([1.0, 2.0, 2.0, 1.0, 0.0][r - 1] + i) is not None:
                return r

    assert _lockstep(3, curve, fit, 10) == [4, 4, 4]  # best round 2, stopped 2 rounds later
    assert curve.best == 2
    # No fold starts round r + 1 before every fold has finished round r.
    rounds = [r for _, r in order]
    assert rounds == sorted(rounds)


@pytest.mark.parametrize("library", list(SUBSAMPLED))
def test_refit_trains_the_best_round_and_says_so(library: str) -> None:
    data = load_dataset(load_spec_dataset("breast_cancer"))
    message = ModelRefit(
        study_id="early",
        trial_id="e" * 24,
        library=library,
        params=SUBSAMPLED[library],
        dataset=load_spec_dataset("breast_cancer"),
        task="classification",
        requested_at=0.0,
        best_round=7,
    )
    blobs = MemoryBlobStore(1 << 24)
    stored = refit(message, data, blobs, threads=1, worker="w", attempts=1)
    assert stored.status == "done", stored.error
    assert (stored.rounds, stored.rounds_from) == (7, "early_stopping")
    assert stored.params == SUBSAMPLED[library]  # the trial's own parameters, unchanged
    assert stored.sha256 is not None
    loaded = load_estimator(stored, blobs.read_bytes(stored.sha256))
    view = library_data(data, library)
    rounds = catalogues()[library].rounds[0]
    local = make_estimator(library, data.task, {**SUBSAMPLED[library], rounds: 7})
    local.fit(view.X, view.y)
    assert np.array_equal(loaded.predict_proba(view.X), local.predict_proba(view.X))
    # Another best round is another model, under another identity.
    other = message.model_copy(update={"best_round": 8})
    assert model_identity(other, "v", data) != model_identity(message, "v", data)


def test_the_client_refits_a_trial_at_the_round_early_stopping_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = parse_spec(
        {
            "dataset": "iris",
            "search": {"xgboost": {"early_stopping": {"rounds": 3, "max_rounds": 30}}},
        }
    )
    study = spec.study_id()
    (trial,) = expand(spec, study)
    data = load_dataset(spec.dataset)
    ctx, _ = _context("xgboost", data, "accuracy")
    stop = spec.search["xgboost"].early_stopping
    assert stop is not None
    result = run_stopped(ctx, trial, stop).model_copy(update={"study_id": study})
    assert result.early_stopping is not None
    client = Client(
        ClientSettings(rabbitmq_url="amqp://u:p@nowhere:1/", mongodb_url="mongodb://x:1"),
        store=MemoryStore(),
        blobs=MemoryBlobStore(1 << 20),
    )
    registered = StudyRegistered(
        study_id=study, spec=spec, n_trials=1, submitted_at=0.0, published_at=0.0
    )
    client.store.write_events([registered, result])
    stored = client.trial(result.trial_id)
    assert stored is not None and stored.result is not None
    assert stored.result.best_round == result.early_stopping.best_round
    published: list[bytes] = []
    monkeypatch.setattr(client, "publish", lambda exchange, key, body: published.append(body))
    client.refit(study)
    (body,) = published
    assert ModelRefit.decode(body).best_round == result.early_stopping.best_round


@pytest.mark.parametrize("library", list(SUBSAMPLED))
@pytest.mark.parametrize("regression", [False, True])
def test_a_table_with_categories_and_gaps_stops_and_scores_as_gridsearch(
    library: str, regression: bool
) -> None:
    data = from_frame(mixed_table(regression=regression), "target")
    metric = "neg_mean_absolute_error" if regression else "roc_auc"
    ctx, trial = _context(library, data, metric)
    result = run_stopped(ctx, trial, STOP)
    assert result.status == "done", result.error
    assert result.early_stopping is not None
    best = result.early_stopping.best_round
    rounds = catalogues()[library].rounds[0]
    fixed = SUBSAMPLED[library]
    reference = gridsearch_means(
        library, data, fixed, {rounds: [best]}, metric=metric, folds=3, seed=7
    )
    assert result.score == reference[params_key({**fixed, rounds: best})]


def test_the_results_table_has_the_best_round_only_where_early_stopping_chose_it() -> None:
    from dataclasses import replace

    from tunefleet.frames import RESULT_COLUMNS
    from tunefleet.frames import results as results_frame
    from tunefleet_runtime.records import TrialRecord

    plain = TrialRecord("a" * 24, "s", "xgboost", {"n_estimators": 9}, "done", 0, 1.0, score=0.5)
    assert list(results_frame([plain]).columns) == [*RESULT_COLUMNS, "param_n_estimators"]
    stopped = replace(plain, trial_id="b" * 24, params={}, early_stopping={"best_round": 17})
    frame = results_frame([plain, stopped])
    assert list(frame.columns) == [*RESULT_COLUMNS, "best_round", "param_n_estimators"]
    best = frame.set_index("trial_id")["best_round"]
    assert str(best.dtype) == "Int64"
    assert best.isna()["a" * 24] and best["b" * 24] == 17


def _catalogued_metrics() -> list[tuple[str, str, str]]:
    return [
        (library, name, kind)
        for library in SUBSAMPLED
        for name, metric in catalogues()[library].eval_metrics.items()
        for kind in sorted(metric.kinds)
    ]


KIND_DATA = {"binary": "breast_cancer", "multiclass": "iris", "regression": "diabetes"}


@pytest.mark.parametrize(("library", "metric", "kind"), _catalogued_metrics())
def test_every_catalogued_metric_is_reported_by_its_library(
    library: str, metric: str, kind: str
) -> None:
    data = load_dataset(load_spec_dataset(KIND_DATA[kind]))
    scorer = "r2" if kind == "regression" else "accuracy"
    ctx, trial = _context(library, data, scorer)
    result = run_stopped(ctx, trial, EarlyStoppingSpec(rounds=2, max_rounds=6, metric=metric))
    assert result.status == "done", result.error
    assert result.early_stopping is not None and result.early_stopping.metric == metric
    assert all(value is not None for value in result.early_stopping.curve_mean)
