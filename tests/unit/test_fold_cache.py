"""The fold cache's fast path: reused training structures give GridSearchCV's scores exactly.

test_parity.py checks the worker against GridSearchCV; here the grids also vary the binning
parameters, so trials must share a structure only where the binning agrees, and the test checks
that they did share (cache hits), with scores bit-for-bit equal to a from-scratch fit.
"""

from __future__ import annotations

from typing import Any

import pytest
from tunefleet_publisher.planner import expand
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker import foldcache
from tunefleet_worker.datasets import load_dataset
from tunefleet_worker.training import TrialContext, run_trial

from tests.support.reference import gridsearch_means, params_key

GRIDS: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
    "xgboost": (
        {"n_estimators": 6},
        {"max_bin": [16, 256], "max_depth": [2, 4], "subsample": [0.7, 1.0]},
    ),
    "lightgbm": (
        {"n_estimators": 6, "subsample_freq": 1},
        {
            "max_bin": [15, 255],
            "min_child_samples": [5, 20],
            "num_leaves": [4, 15],
            "subsample": [0.7, 1.0],
        },
    ),
    "catboost": (
        {"iterations": 6},
        {"border_count": [16, 254], "depth": [2, 4], "rsm": [0.5, 1.0]},
    ),
}

DATASETS = [
    ({"kind": "make_classification", "n_samples": 600, "n_features": 8, "seed": 3}, "roc_auc"),
    ({"kind": "make_regression", "n_samples": 600, "n_features": 8, "seed": 3}, "r2"),
]


def _context(spec: Any, reuse: bool) -> TrialContext:
    return TrialContext(
        study_id="cache",
        dataset=load_dataset(spec.dataset),
        metric=spec.metric,
        folds=3,
        seed=11,
        worker="test",
        attempts=1,
        threads=1,
        reuse_structures=reuse,
    )


@pytest.mark.parametrize("library", sorted(GRIDS))
@pytest.mark.parametrize(("dataset", "metric"), DATASETS)
def test_reused_structures_score_exactly_like_gridsearchcv(
    library: str, dataset: dict[str, Any], metric: str
) -> None:
    foldcache.clear()
    fixed, grid = GRIDS[library]
    spec = parse_spec(
        {
            "dataset": dataset,
            "metric": metric,
            "cv": {"folds": 3, "seed": 11},
            "search": {library: {"fixed": fixed, "grid": grid}},
        }
    )
    trials = list(expand(spec, "cache"))
    fast_ctx, plain_ctx = _context(spec, reuse=True), _context(spec, reuse=False)
    fast = {t.trial_id: run_trial(fast_ctx, t) for t in trials}
    plain = {t.trial_id: run_trial(plain_ctx, t) for t in trials}

    # Two binning values x 3 folds are built once each; every other fit reuses one.
    binning_keys = 4 if library == "lightgbm" else 2  # min_child_samples pre-filters features
    assert fast_ctx.fold_set.misses == binning_keys * 3
    assert fast_ctx.fold_set.hits == len(trials) * 3 - binning_keys * 3
    for tid, result in fast.items():
        assert result.status == "done", result.error
        assert result.fold_scores == plain[tid].fold_scores  # bit for bit

    by_params = {params_key(t.params): fast[t.trial_id] for t in trials}
    expected_means = gridsearch_means(
        library, fast_ctx.dataset, fixed, grid, metric=metric, folds=3, seed=11
    )
    for key, expected in expected_means.items():
        result = by_params[key]
        assert result.score is not None
        assert abs(result.score - expected) <= 1e-9


def test_a_library_error_after_a_reused_structure_is_a_failed_result() -> None:
    foldcache.clear()
    spec = parse_spec(
        {
            "dataset": DATASETS[0][0],
            "metric": "accuracy",
            "cv": {"folds": 3, "seed": 11},
            "search": {
                "lightgbm": {"grid": {"n_estimators": [3], "boosting_type": ["gbdt", "rf"]}}
            },
        }
    )
    ctx = _context(spec, reuse=True)
    results = {t.params["boosting_type"]: run_trial(ctx, t) for t in expand(spec, "cache")}
    assert results["gbdt"].status == "done"
    assert results["rf"].status == "failed" and "bagging" in (results["rf"].error or "")
    # The structure survived the failed fit and serves the next trial.
    again = run_trial(ctx, next(iter(expand(spec, "cache"))))
    assert again.fold_scores == results["gbdt"].fold_scores
    # And LightGBM's estimators are back on their own Dataset class after the error.
    import lightgbm.basic
    import lightgbm.sklearn

    assert lightgbm.sklearn.Dataset is lightgbm.basic.Dataset  # type: ignore[attr-defined]


def test_over_the_array_budget_folds_are_sliced_per_fit_and_structures_still_shared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    foldcache.clear()
    monkeypatch.setattr(foldcache, "FOLD_ARRAY_BUDGET_BYTES", 1)
    spec = parse_spec(
        {
            "dataset": DATASETS[0][0],
            "metric": "accuracy",
            "cv": {"folds": 3, "seed": 11},
            "search": {"xgboost": {"fixed": {"n_estimators": 3}, "grid": {"max_depth": [2, 3]}}},
        }
    )
    fast, plain = _context(spec, reuse=True), _context(spec, reuse=False)
    assert not fast.fold_set.keep_arrays
    assert fast.fold_set.fold(0) is not fast.fold_set.fold(0)  # sliced again each time
    for trial in expand(spec, "cache"):
        assert run_trial(fast, trial).fold_scores == run_trial(plain, trial).fold_scores
    assert fast.fold_set.misses == 3 and fast.fold_set.hits == 3


def test_structures_are_evicted_least_recently_used_first() -> None:
    foldcache.clear()
    iris = parse_spec({"dataset": "iris", "search": {"noop": {"grid": {"x": [0.0]}}}})
    folds = foldcache.fold_set(load_dataset(iris.dataset), 3, 0)
    folds.max_structures = 2
    built: list[str] = []

    def build(name: str) -> str:
        built.append(name)
        return name

    assert folds.structure("a", lambda: build("a")) == "a"
    assert folds.structure("b", lambda: build("b")) == "b"
    assert folds.structure("a", lambda: build("a")) == "a"  # hit: "a" is now the newest
    assert folds.structure("c", lambda: build("c")) == "c"  # evicts "b"
    assert folds.structure("a", lambda: build("a")) == "a"
    assert folds.structure("b", lambda: build("b")) == "b"
    assert built == ["a", "b", "c", "b"]


def test_lightgbm_reuses_datasets_without_patching_lightgbm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The cached Dataset reaches LightGBM's fit for that one call: while it is being built,
    # LightGBM's module (which every other thread's fit uses) still holds its own class.
    import lightgbm.basic
    import lightgbm.sklearn

    foldcache.clear()
    seen: list[bool] = []
    structure = foldcache.FoldSet.structure

    def watched(self: foldcache.FoldSet, key: Any, build: Any) -> Any:
        seen.append(lightgbm.sklearn.Dataset is lightgbm.basic.Dataset)  # type: ignore[attr-defined]
        return structure(self, key, build)

    monkeypatch.setattr(foldcache.FoldSet, "structure", watched)
    fixed, _ = GRIDS["lightgbm"]
    dataset, metric = DATASETS[0]
    spec = parse_spec(
        {
            "dataset": dataset,
            "metric": metric,
            "cv": {"folds": 3, "seed": 11},
            "search": {"lightgbm": {"fixed": fixed, "grid": {"num_leaves": [4, 15]}}},
        }
    )
    context = _context(spec, reuse=True)
    results = [run_trial(context, t) for t in expand(spec, "cache")]
    assert all(r.status == "done" for r in results)
    assert len(seen) >= 6 and all(seen)  # 2 trials x 3 folds, each through the cache
