"""The library registries: each library is one module on each side, and the sides agree."""

from __future__ import annotations

import pytest
from tunefleet_contract.libraries import catalogues
from tunefleet_contract.params import LIBRARIES, THREAD_PARAM
from tunefleet_worker.libraries import model_libraries, model_library
from tunefleet_worker.training import library_version, make_estimator


def test_the_worker_runs_every_library_of_the_catalogue_and_no_other() -> None:
    assert set(model_libraries()) == set(catalogues()) == set(LIBRARIES)
    assert {"xgboost", "lightgbm", "catboost", "noop"} <= set(LIBRARIES)


@pytest.mark.parametrize("library", sorted(catalogues()))
def test_each_library_names_its_thread_parameter_in_its_catalogue(library: str) -> None:
    assert THREAD_PARAM[library] in catalogues()[library].params
    assert library_version(library) != "unknown"


def test_the_test_library_trains_nothing_and_the_others_build_estimators() -> None:
    noop = model_library("noop")
    slept: list[float] = []
    assert noop.simulate_fold({"score": 0.5, "sleep_s": 3.0}, 0, 3, slept.append) == 0.5
    assert slept == [1.0]  # each fold sleeps its part of the trial's sleep_s
    assert noop.simulate_fold({"fail": True}, 1, 3, slept.append) == 0.0  # fails at its end
    with pytest.raises(RuntimeError, match="asked to fail"):
        noop.simulate_fold({"fail": True}, 2, 3, slept.append)
    estimator = make_estimator("lightgbm", "regression", {"n_estimators": 3}, threads=2)
    assert type(estimator).__name__ == "LGBMRegressor" and estimator.n_jobs == 2
    assert model_library("xgboost").simulate_fold({}, 0, 3, lambda _s: None) is None
    with pytest.raises(ValueError, match="no estimator for library 'sklearn'"):
        make_estimator("sklearn", "regression", {}, threads=1)
