"""Optuna's early stopping and pruning over `xgb.cv` and `lgb.cv`, as its documentation has a
user write them, for the early-stopping benchmark (`bench.early_stopping`).

Runs in a fresh process (`python -m bench.early_stopping_peers SIDE SPEC_JSON OUT_JSON`) on the
spec's dataset, folds and scorer (`bench.peers.load_study`), with the libraries imported before
the clock, and writes its wall time and every trial. The spec's one library picks the side's
library.

- `optuna-pruning`: `optuna_integration.XGBoostPruningCallback(trial, "test-<metric>")` in
  `xgb.cv(params, dtrain, num_boost_round=max_rounds, folds=<the study's folds>,
  early_stopping_rounds=rounds)` (Optuna's `xgboost_cv` example, with the round limit and
  patience of the spec's `early_stopping`), `MedianPruner(n_startup_trials=after_trials,
  n_warmup_steps=warmup)` with the spec's median settings, `study.optimize(n_jobs=2)` (threads),
  1 thread per `xgb.cv`. The configurations are the spec's random search's, enqueued in its
  order (`study.enqueue_trial`), so that every side evaluates the same ones. A trial's value is
  the best mean of the metric over the folds (`xgb.cv`'s history truncated at its best round
  where it stopped; the first best where it ran to the limit, as the rule in docs/spec.md
  defines it), turned into the scorer's value: accuracy = 1 - `error`, the negated RMSE =
  -`rmse` (both exact: means over the same folds). A pruned trial has no value, as in Optuna.
  The data in one `xgboost.DMatrix` before the clock.
- The same for LightGBM: `optuna_integration.LightGBMPruningCallback(trial, "<metric>")` in
  `lgb.cv(params, lgb.Dataset(X, y), num_boost_round=max_rounds, folds=<the study's folds>,
  callbacks=[lgb.early_stopping(rounds), ...])` (Optuna's LightGBM pruning example, its
  `Dataset` made in the objective as there: `lgb.cv` bins it with each trial's parameters,
  once on all rows, and slices the folds from it), `binary_error` for accuracy.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.adaptive_peers import suggest
from bench.common import CORES
from bench.peers import load_study, splitter
from bench.stopping import Trial, random_points

LABELS = {
    "xgboost": (
        f"Optuna XGBoostPruningCallback + MedianPruner over xgb.cv (early stopping), n_jobs={CORES}"
    ),
    "lightgbm": (
        "Optuna LightGBMPruningCallback + MedianPruner over lgb.cv (early stopping), "
        f"n_jobs={CORES}"
    ),
}
# The scorer -> per library, the metric whose mean over the folds gives the scorer's mean
# exactly, and the conversion.
METRICS: dict[str, dict[str, tuple[str, Callable[[float], float]]]] = {
    "xgboost": {
        "accuracy": ("error", lambda error: 1.0 - error),
        "neg_root_mean_squared_error": ("rmse", lambda rmse: -rmse),
    },
    "lightgbm": {
        "accuracy": ("binary_error", lambda error: 1.0 - error),
        "neg_root_mean_squared_error": ("rmse", lambda rmse: -rmse),
    },
}


def library_of(spec: Any) -> str:
    """The spec's one library: the side's."""
    (library,) = spec.search
    return str(library)


def _optuna_pruning(spec: Any, X: Any, y: Any, study: dict[str, Any]) -> tuple[float, list[Trial]]:
    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    library = library_of(spec)
    part = spec.search[library]
    stop, (search, *_) = part.early_stopping, part.searches()
    if stop is None or stop.median is None:
        raise ValueError("the peer needs the spec's early_stopping with its median settings")
    metric, to_score = METRICS[library][study["metric"]]
    classify = study["task"] == "classification"
    if classify and len(np.unique(y)) != 2:
        raise ValueError("the peer's metrics are for binary classification")
    folds = list(splitter(study["task"], study["folds"], study["seed"]).split(X, y))
    trials: list[Trial] = []
    lock = threading.Lock()
    if library == "lightgbm":
        cv = _lgb_cv(X, y, folds, metric, classify, stop.max_rounds, stop.rounds)
    else:
        cv = _xgb_cv(X, y, folds, metric, classify, stop.max_rounds, stop.rounds)

    def objective(trial: Any) -> float:
        params = suggest(trial, search, part.fixed)
        rounds = [0]
        started = time.perf_counter()
        try:
            means = cv(trial, params, rounds)
        except optuna.TrialPruned:
            with lock:
                trials.append(Trial(None, time.perf_counter() - started, None, rounds[0], True))
            raise
        fit_s = time.perf_counter() - started
        best = int(np.argmin(means))  # the first best: a tie is no improvement
        with lock:
            trials.append(Trial(to_score(float(means[best])), fit_s, best + 1, rounds[0]))
        return float(means[best])

    search_study = optuna.create_study(
        direction="minimize",  # the metric's: error and RMSE
        sampler=optuna.samplers.RandomSampler(seed=search.seed_or(spec.cv.seed)),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=stop.median.after_trials, n_warmup_steps=stop.median.warmup
        ),
    )
    points = random_points(spec, library)
    for point in points:
        search_study.enqueue_trial({k: v for k, v in point.items() if k not in part.fixed})
    started = time.perf_counter()
    search_study.optimize(objective, n_trials=len(points), n_jobs=CORES)
    return time.perf_counter() - started, trials


# One trial's cross-validation: (the Optuna trial, its parameters, a one-item list that counts
# the rounds trained, pruned trials included) -> the mean validation curve up to the best round
# where it stopped early, the whole curve where it ran to the limit.
CV = Callable[[Any, dict[str, Any], list[int]], Any]


def _xgb_cv(
    X: Any, y: Any, folds: list[Any], metric: str, classify: bool, max_rounds: int, patience: int
) -> CV:
    import numpy as np
    import xgboost as xgb
    from optuna_integration import XGBoostPruningCallback

    objective_name = "binary:logistic" if classify else "reg:squarederror"
    dtrain = xgb.DMatrix(X, label=y, nthread=1)
    column = f"test-{metric}-mean"

    class Rounds(xgb.callback.TrainingCallback):
        """Counts the rounds trained, pruned trials included (first in the list: it always
        runs)."""

        def __init__(self, counter: list[int]) -> None:
            super().__init__()
            self.counter = counter

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            self.counter[0] = epoch + 1
            return False

    def cv(trial: Any, params: dict[str, Any], rounds: list[int]) -> Any:
        history = xgb.cv(
            {"objective": objective_name, "eval_metric": metric, "nthread": 1, **params},
            dtrain,
            num_boost_round=max_rounds,
            folds=folds,
            early_stopping_rounds=patience,
            callbacks=[Rounds(rounds), XGBoostPruningCallback(trial, f"test-{metric}")],
        )
        return np.asarray(history[column], dtype=float)

    return cv


def _lgb_cv(
    X: Any, y: Any, folds: list[Any], metric: str, classify: bool, max_rounds: int, patience: int
) -> CV:
    import lightgbm as lgb
    import numpy as np
    from optuna_integration import LightGBMPruningCallback

    objective_name = "binary" if classify else "regression"
    column = f"valid {metric}-mean"

    def cv(trial: Any, params: dict[str, Any], rounds: list[int]) -> Any:
        def count(env: Any) -> None:
            rounds[0] = env.iteration + 1

        history = lgb.cv(
            {
                "objective": objective_name,
                "metric": metric,
                "num_threads": 1,
                "verbose": -1,
                **params,
            },
            lgb.Dataset(X, label=y),
            num_boost_round=max_rounds,
            folds=folds,
            callbacks=[
                count,
                lgb.early_stopping(patience, verbose=False),
                LightGBMPruningCallback(trial, metric),
            ],
        )
        return np.asarray(history[column], dtype=float)

    return cv


RUNNERS = {"optuna-pruning": _optuna_pruning}


def child(side: str, spec_json: str, out: str) -> None:
    """In a fresh process: run the peer's search of the spec; write JSON to `out`."""
    spec, X, y, study = load_study(spec_json)
    wall, trials = RUNNERS[side](spec, X, y, study)
    rows = [[t.score, t.fit_s, t.rounds, t.trained, t.stopped] for t in trials]
    Path(out).write_text(json.dumps({"wall_s": wall, "trials": rows}))


if __name__ == "__main__":
    child(*sys.argv[1:4])
