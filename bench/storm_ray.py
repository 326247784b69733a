"""The Ray Tune side of the preemption storm (`bench.storm`): the storm's trials as a function
trainable that checkpoints itself, under `FailureConfig(max_failures=-1)`.

`python -m bench.storm_ray CONFIG_JSON OUT_JSON`, run by `bench.storm` in a process of its own
(Ray's driver, its raylet and its workers), which sends the notices from outside. The trainable
logs each attempt's start (its pid), each checkpoint and its finish to `config["log"]` (JSON
lines): the storm reads the pids to notice, and the wasted seconds from the log.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FOLDS = 5


def _log(path: str, **event: Any) -> None:
    with Path(path).open("a") as f:
        f.write(json.dumps({**event, "pid": os.getpid(), "at": time.time()}) + "\n")


def trainable(config: dict[str, Any]) -> None:
    """One trial: every fold of XGBoost with the study's parameters, on the worker's own data
    and folds, `ray_every` rounds at a time (continuing the booster), a checkpoint after each
    chunk and each fold; from the last checkpoint where Tune restores one."""
    started = time.perf_counter()
    from ray import tune
    from sklearn.metrics import get_scorer
    from tunefleet_runtime.validation import parse_spec
    from tunefleet_worker.datasets import load_dataset
    from tunefleet_worker.foldcache import fold_set
    from tunefleet_worker.training import make_estimator

    log, index, every = config["log"], int(config["trial"]), int(config["ray_every"])
    checkpoint = tune.get_checkpoint()
    _log(log, event="start", trial=index, restored=checkpoint is not None)
    spec = parse_spec(config["spec"])
    part = spec.search["xgboost"]
    grid = part.grid if isinstance(part.grid, dict) else part.grid[0]  # the storm's: one dict
    params: dict[str, Any] = {**part.fixed, "learning_rate": grid["learning_rate"][index]}
    rounds = int(params.pop("n_estimators"))
    dataset = load_dataset(spec.dataset)
    folds = fold_set(dataset, spec.cv.folds, spec.cv.seed)
    scorer = get_scorer(spec.resolved_metric(dataset.task))

    import xgboost

    state: dict[str, Any] = {"fold": 0, "round": 0, "scores": [], "fit_s": [], "score_s": []}
    state.update(work_s=0.0, fold_fit_s=0.0)
    booster: Any = None
    if checkpoint is not None:
        with checkpoint.as_directory() as where:
            state = json.loads((Path(where) / "state.json").read_text())
            if (Path(where) / "booster.ubj").exists():
                booster = xgboost.Booster()
                booster.load_model(str(Path(where) / "booster.ubj"))
    attempt_s = 0.0  # the training this attempt did, up to now

    def save(metrics: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory(prefix="storm-ckpt-") as where:
            (Path(where) / "state.json").write_text(json.dumps(state))
            if booster is not None:
                booster.save_model(str(Path(where) / "booster.ubj"))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(where))
        _log(log, event="checkpoint", trial=index, attempt_work_s=attempt_s, work_s=state["work_s"])

    while state["fold"] < FOLDS:
        fold = folds.fold(state["fold"])
        chunk = min(every, rounds - state["round"])
        t0 = time.perf_counter()
        estimator = make_estimator(
            "xgboost", dataset.task, {**params, "n_estimators": chunk}, 1, dataset.categorical
        )
        estimator.fit(fold.X_train, fold.y_train, xgb_model=booster)
        booster = estimator.get_booster()
        fit_s = time.perf_counter() - t0
        state["round"] += chunk
        state["fold_fit_s"] += fit_s
        state["work_s"] += fit_s
        attempt_s += fit_s
        if state["round"] >= rounds:
            t0 = time.perf_counter()
            state["scores"].append(float(scorer(estimator, fold.X_test, fold.y_test)))
            score_s = time.perf_counter() - t0
            state["fit_s"].append(state["fold_fit_s"])
            state["score_s"].append(score_s)
            state["work_s"] += score_s
            attempt_s += score_s
            state.update(fold=state["fold"] + 1, round=0, fold_fit_s=0.0)
            booster = None
        if state["fold"] < FOLDS:
            save({"fold": state["fold"], "round": state["round"]})
    score = sum(state["scores"]) / FOLDS
    _log(
        log,
        event="done",
        trial=index,
        work_s=state["work_s"],
        fit_s=sum(state["fit_s"]),
        attempt_s=time.perf_counter() - started,
    )
    tune.report({"score": score, "fold": FOLDS, "round": 0, "work_s": state["work_s"]})


def driver(config: dict[str, Any], out: Path) -> None:
    import ray
    from ray import tune

    scale = config["scale"]
    # Tune's CSV, JSON and TensorBoard loggers write files per result: nothing here reads them.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    storage = tempfile.mkdtemp(prefix="tunefleet-bench-storm-ray-")
    ray.init(
        num_cpus=scale["workers"],
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    started = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={
            "trial": tune.grid_search(list(range(scale["trials"]))),
            "spec": config["spec"],
            "log": config["log"],
            "ray_every": scale["ray_every"],
        },
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=scale["workers"]),
        run_config=tune.RunConfig(
            storage_path=storage,
            name="storm",
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=-1),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    results = tuner.fit()
    wall = time.perf_counter() - started
    finished, errors, scores = 0, [], {}
    for result in results:
        metrics = result.metrics or {}
        if result.error is None and "score" in metrics:
            finished += 1
            scores[int((result.config or {})["trial"])] = float(metrics["score"])
        else:
            errors.append(repr(result.error))
    ray.shutdown()
    out.write_text(
        json.dumps({"wall_s": wall, "finished": finished, "errors": errors, "scores": scores})
    )


if __name__ == "__main__":
    driver(json.loads(sys.argv[1]), Path(sys.argv[2]))
