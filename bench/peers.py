"""The tools a user would pick instead of tunefleet, each run as that user would run it.

Every peer runs in a fresh process (`python -m bench.peers SIDE SPEC_JSON OUT_JSON`), with the
three libraries imported and its own workers started before the clock, one library's grid after
the other, on the study's folds and scorer, and writes its wall time and every trial's mean
score. The peers are in the `peers` dependency group (`uv run --group peers`), never in a
service image; a peer that is not installed is reported as such.

- `gridsearch-2x1`: `GridSearchCV(n_jobs=2, refit=False)`, 1 thread per fit;
- `gridsearch-1x2`: `GridSearchCV(n_jobs=1, refit=False)`, 2 threads per fit;
- `optuna`: `GridSampler` over the grid, `study.optimize(n_jobs=2)` (threads),
  `cross_val_score` in the objective;
- `ray`: Ray Tune, `tune.grid_search` on every axis, `ray.init(num_cpus=2)`, 1 CPU per trial.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import CORES

Scores = list[tuple[str, dict[str, Any], float]]
PEERS = ("gridsearch-2x1", "gridsearch-1x2", "optuna", "ray")
LABELS = {
    "gridsearch-2x1": f"GridSearchCV(n_jobs={CORES}), 1 thread per fit",
    "gridsearch-1x2": f"GridSearchCV(n_jobs=1), {CORES} threads per fit",
    "optuna": f"Optuna GridSampler, n_jobs={CORES}",
    "ray": f"Ray Tune grid_search, {CORES} CPUs, 1 per trial",
    "tunefleet": f"tunefleet, {CORES} workers x 1 thread",
}
_DISTRIBUTIONS = {"optuna": "optuna", "ray": "ray"}


def installed(side: str) -> bool:
    import importlib.util

    dist = _DISTRIBUTIONS.get(side)
    return dist is None or importlib.util.find_spec(dist) is not None


def import_libraries(_: object = None) -> str:
    import catboost
    import lightgbm
    import xgboost

    return f"{xgboost.__version__} {lightgbm.__version__} {catboost.__version__}"


def splitter(task: str, folds: int, seed: int) -> Any:
    from sklearn.model_selection import KFold, StratifiedKFold

    return (StratifiedKFold if task == "classification" else KFold)(
        n_splits=folds, shuffle=True, random_state=seed
    )


def cross_validated(
    library: str, params: dict[str, Any], X: Any, y: Any, study: dict[str, Any], threads: int
) -> tuple[float, float]:
    """One trial as a user's objective computes it: the mean test score over the study's folds
    (what cross_val_score averages) and the seconds spent in `fit`, summed over the folds."""
    import numpy as np
    from sklearn.model_selection import cross_validate
    from tunefleet_worker.training import make_estimator

    estimator = make_estimator(library, study["task"], params, threads=threads)
    cv = splitter(study["task"], study["folds"], study["seed"])
    out = cross_validate(estimator, X, y, cv=cv, scoring=study["metric"])
    return float(np.mean(out["test_score"])), float(np.sum(out["fit_time"]))


def _gridsearch(n_jobs: int, threads: int) -> Callable[..., tuple[float, Scores]]:
    def run(spec: Any, X: Any, y: Any, study: dict[str, Any]) -> tuple[float, Scores]:
        from joblib import Parallel, delayed
        from sklearn.model_selection import GridSearchCV
        from tunefleet_worker.training import make_estimator

        if n_jobs > 1:  # loky's workers started and the libraries imported in them
            Parallel(n_jobs=n_jobs)(delayed(import_libraries)(i) for i in range(n_jobs))
        scores: Scores = []
        started = time.perf_counter()
        for library, part in spec.search.items():
            search = GridSearchCV(
                make_estimator(library, study["task"], part.fixed, threads=threads),
                part.grid,
                scoring=study["metric"],
                cv=splitter(study["task"], study["folds"], study["seed"]),
                refit=False,
                n_jobs=n_jobs,
            ).fit(X, y)
            results = search.cv_results_
            for params, mean in zip(results["params"], results["mean_test_score"], strict=True):
                scores.append((library, {**part.fixed, **params}, float(mean)))
        return time.perf_counter() - started, scores

    return run


def _optuna(spec: Any, X: Any, y: Any, study: dict[str, Any]) -> tuple[float, Scores]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scores: Scores = []
    started = time.perf_counter()
    for library, part in spec.search.items():

        def objective(trial: Any, library: str = library, part: Any = part) -> float:
            params = {k: trial.suggest_categorical(k, values) for k, values in part.grid.items()}
            return cross_validated(library, {**part.fixed, **params}, X, y, study, threads=1)[0]

        search = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.GridSampler(part.grid, seed=0)
        )
        # No n_trials: the GridSampler stops the study once every grid point was sampled.
        search.optimize(objective, n_jobs=CORES)
        for trial in search.trials:
            if trial.state == optuna.trial.TrialState.COMPLETE and trial.value is not None:
                scores.append((library, {**part.fixed, **trial.params}, float(trial.value)))
    return time.perf_counter() - started, scores


def _grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    from sklearn.model_selection import ParameterGrid

    return list(ParameterGrid(grid))


def _ray_trial(config: dict[str, Any], X: Any, y: Any, study: dict[str, Any]) -> dict[str, Any]:
    params = dict(config["point"])
    library = params.pop("__library")
    return {"score": cross_validated(library, params, X, y, study, threads=1)[0]}


def _ray(spec: Any, X: Any, y: Any, study: dict[str, Any]) -> tuple[float, Scores]:
    import ray
    from ray import tune

    # Tune's CSV, JSON and TensorBoard loggers write files per result: nothing here reads them.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    storage = tempfile.mkdtemp(prefix="tunefleet-bench-ray-")
    ray.init(
        num_cpus=CORES, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
    )
    # Worker processes started and the libraries imported in them, before the clock.
    ray.get([ray.remote(import_libraries).remote(i) for i in range(CORES)])
    # One Tuner for the whole study: a grid over every library's points (each Tuner costs
    # seconds of set-up, and one search lets Ray keep both CPUs busy across libraries).
    points = [
        {"__library": library, **part.fixed, **params}
        for library, part in spec.search.items()
        for params in _grid_points(part.grid)
    ]
    scores: Scores = []
    started = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_ray_trial, X=X, y=y, study=study), {"cpu": 1}),
        param_space={"point": tune.grid_search(points)},
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=CORES),
        run_config=tune.RunConfig(storage_path=storage, name="bench", verbose=0),
    )
    for result in tuner.fit():
        if result.error is not None:
            raise RuntimeError(f"ray trial failed: {result.error}")
        assert result.config is not None and result.metrics is not None
        params = dict(result.config["point"])
        library = params.pop("__library")
        scores.append((library, params, float(result.metrics["score"])))
    wall = time.perf_counter() - started
    ray.shutdown()
    return wall, scores


RUNNERS: dict[str, Callable[..., tuple[float, Scores]]] = {
    "gridsearch-2x1": _gridsearch(CORES, 1),
    "gridsearch-1x2": _gridsearch(1, CORES),
    "optuna": _optuna,
    "ray": _ray,
}


def load_study(spec_json: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """In a peer's process: the spec, X, y and what its objective needs (task, metric, folds,
    seed), with the three libraries imported before any clock starts."""
    from tunefleet_runtime.validation import parse_spec, resolved_task
    from tunefleet_worker.datasets import load_dataset

    spec = parse_spec(json.loads(spec_json))
    dataset = load_dataset(spec.dataset)
    task = resolved_task(spec) or dataset.task
    study = {
        "task": task,
        "metric": spec.resolved_metric(task),
        "folds": spec.cv.folds,
        "seed": spec.cv.seed,
    }
    import_libraries()
    return spec, dataset.X, dataset.y, study


def child(side: str, spec_json: str, out: str) -> None:
    """In a fresh process: run one peer over the spec's grid; write JSON to `out`."""
    spec, X, y, study = load_study(spec_json)
    wall, scores = RUNNERS[side](spec, X, y, study)
    Path(out).write_text(json.dumps({"wall_s": wall, "scores": scores}))


if __name__ == "__main__":
    child(*sys.argv[1:4])
