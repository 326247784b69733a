from __future__ import annotations

import numpy as np
import pytest
from tunefleet_contract.messages import TrialSpec
from tunefleet_contract.search import trial_id
from tunefleet_contract.spec import BuiltinDataset
from tunefleet_worker.datasets import Dataset, load_dataset
from tunefleet_worker.training import TrialContext, run_trial


def context(metric: str = "accuracy") -> TrialContext:
    return TrialContext(
        study_id="s",
        dataset=load_dataset(BuiltinDataset(name="iris")),
        metric=metric,
        folds=3,
        seed=0,
        worker="w",
        attempts=2,
        threads=1,
        sleep=lambda _: None,
    )


def trial(library: str, **params: object) -> TrialSpec:
    return TrialSpec(trial_id=trial_id("s", library, params), library=library, params=params)  # type: ignore[arg-type]


def test_library_error_is_a_failed_result_with_its_message() -> None:
    # Each value is valid alone; LightGBM refuses random forests without bagging.
    result = run_trial(context(), trial("lightgbm", n_estimators=2, boosting_type="rf"))
    assert result.status == "failed"
    assert result.reason == "training-error"
    assert result.error is not None and "bagging" in result.error
    assert result.score is None and result.attempts == 2


def test_done_result_records_folds_timing_and_version() -> None:
    result = run_trial(context(), trial("lightgbm", n_estimators=5, num_leaves=4))
    assert result.status == "done"
    assert len(result.fold_scores) == 3 and result.score is not None
    assert result.fit_time_s is not None and result.fit_time_s > 0
    assert result.library_version and result.library_version[0].isdigit()
    assert result.worker == "w" and result.metric == "accuracy"


def test_noop_model() -> None:
    done = run_trial(context(), trial("noop", score=0.25))
    assert done.status == "done" and done.score == 0.25 and done.fold_scores == [0.25] * 3
    failed = run_trial(context(), trial("noop", fail=True))
    assert failed.status == "failed" and failed.error == "RuntimeError: noop model asked to fail"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_non_finite_score_is_sanitized() -> None:
    # ROC AUC is undefined when a test fold holds one class: NaN must not reach the store.
    base = context().dataset
    constant = Dataset(X=base.X, y=np.zeros_like(base.y), task="classification")
    ctx = TrialContext(
        study_id="s",
        dataset=constant,
        metric="roc_auc",
        folds=3,
        seed=0,
        worker="w",
        attempts=1,
        threads=1,
    )
    result = run_trial(ctx, trial("noop", score=0.5))
    assert result.score == 0.5
    bad = run_trial(ctx, trial("lightgbm", n_estimators=2))
    assert bad.score is None
    assert all(score is None for score in bad.fold_scores)
    assert b"NaN" not in bad.encode()


def test_cached_dataset_is_read_only() -> None:
    data = context().dataset
    assert not data.X.flags.writeable and not data.y.flags.writeable
