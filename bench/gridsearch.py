"""Benchmarks 1 and 5: tunefleet against GridSearchCV on the same cores, and its efficiency.

Both sides get 2 cores and 1 thread per fit: `GridSearchCV(n_jobs=2, refit=False)` in a fresh
process per repetition (its loky workers started and the libraries imported before the clock,
as tunefleet's workers are), and a fresh tunefleet pipeline of 2 workers x 1 thread per
repetition, timed from `submit` to the collector's write of the last result to MongoDB.
The sides alternate which goes first, so a drift in the machine's load hits both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.common import (
    CORES,
    Spread,
    last_stored_at,
    pipeline,
    services_up,
    table,
    trial_docs,
    wait_stored,
    write_section,
)
from bench.studies import gridsearch_spec

Key = tuple[str, str]


def _key(library: str, params: dict[str, Any]) -> Key:
    return library, json.dumps(params, sort_keys=True)


def _warm(_: int) -> str:
    import catboost
    import lightgbm
    import xgboost

    return f"{xgboost.__version__} {lightgbm.__version__} {catboost.__version__}"


def child(spec_json: str) -> None:
    """In a fresh process: GridSearchCV over each library's grid; prints JSON on stdout."""
    from joblib import Parallel, delayed
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from tunefleet_runtime.validation import parse_spec
    from tunefleet_worker.datasets import load_dataset
    from tunefleet_worker.training import make_estimator

    spec = parse_spec(json.loads(spec_json))
    dataset = load_dataset(spec.dataset)
    Parallel(n_jobs=CORES)(delayed(_warm)(i) for i in range(CORES))
    scores: list[tuple[str, dict[str, Any], float]] = []
    per_library: dict[str, float] = {}
    started = time.perf_counter()
    for library, part in spec.search.items():
        t0 = time.perf_counter()
        search = GridSearchCV(
            make_estimator(library, dataset.task, part.fixed, threads=1),
            part.grid,
            scoring=spec.metric,
            cv=StratifiedKFold(n_splits=spec.cv.folds, shuffle=True, random_state=spec.cv.seed),
            refit=False,
            n_jobs=CORES,
        )
        search.fit(dataset.X, dataset.y)
        per_library[library] = time.perf_counter() - t0
        for params, mean in zip(
            search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
        ):
            scores.append((library, {**part.fixed, **params}, float(mean)))
    wall = time.perf_counter() - started
    json.dump({"wall_s": wall, "per_library": per_library, "scores": scores}, sys.stdout)


def _gridsearch(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.gridsearch", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def run(reps: int, quick: bool) -> None:
    spec = gridsearch_spec(quick)
    n_trials = sum(_grid_size(part["grid"]) for part in spec["search"].values())
    gs_walls: list[float] = []
    tf_walls: list[float] = []
    ratios: list[float] = []
    efficiencies: list[float] = []
    training: list[float] = []
    max_diff = 0.0
    exact = compared = 0
    with services_up() as services:
        for rep in range(reps):
            results: dict[str, Any] = {}
            order = ["gridsearch", "tunefleet"] if rep % 2 == 0 else ["tunefleet", "gridsearch"]
            for side in order:
                if side == "gridsearch":
                    results[side] = _gridsearch(spec)
                    continue
                with pipeline(
                    services, workers=CORES, env={"TUNEFLEET_WORKER_THREADS": "1"}
                ) as run_:
                    # Validated before the clock, as a notebook would have it ready.
                    study = run_.client.spec(spec)
                    t0 = time.time()
                    study_id = run_.client.submit(study)
                    wait_stored(run_, study_id, n_trials, timeout=3600)
                    docs = trial_docs(run_, study_id)
                    results[side] = {"wall_s": last_stored_at(docs) - t0, "docs": docs}
            gs, tf = results["gridsearch"], results["tunefleet"]
            failed = [d for d in tf["docs"] if d["status"] != "done"]
            if failed:
                raise RuntimeError(f"{len(failed)} trials failed: {failed[0].get('error')}")
            expected = {_key(lib, params): mean for lib, params, mean in gs["scores"]}
            for doc in tf["docs"]:
                want = expected[_key(doc["library"], doc["params"])]
                max_diff = max(max_diff, abs(doc["score"] - want))
                exact += doc["score"] == want
                compared += 1
            busy = sum(d["fit_time_s"] + d["score_time_s"] for d in tf["docs"])
            gs_walls.append(gs["wall_s"])
            tf_walls.append(tf["wall_s"])
            ratios.append(gs["wall_s"] / tf["wall_s"])
            training.append(busy)
            efficiencies.append(busy / (CORES * tf["wall_s"]))
            print(
                f"rep {rep + 1}: GridSearchCV {gs['wall_s']:.1f} s "
                f"({', '.join(f'{k} {v:.1f}' for k, v in gs['per_library'].items())}), "
                f"tunefleet {tf['wall_s']:.1f} s, ratio {ratios[-1]:.2f}, "
                f"efficiency {efficiencies[-1]:.3f}",
                flush=True,
            )
    _report(spec, n_trials, reps, gs_walls, tf_walls, ratios, max_diff, exact, compared)
    _report_efficiency(spec, n_trials, reps, tf_walls, training, efficiencies)


def _grid_size(grid: dict[str, list[Any]]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size


def _report(
    spec: dict[str, Any],
    n_trials: int,
    reps: int,
    gs_walls: list[float],
    tf_walls: list[float],
    ratios: list[float],
    max_diff: float,
    exact: int,
    compared: int,
) -> None:
    data = spec["dataset"]
    folds = spec["cv"]["folds"]
    rows = [
        ["wall time, s", Spread.of(gs_walls).fmt(1), Spread.of(tf_walls).fmt(1)],
        [
            "trials/s",
            Spread.of([n_trials / w for w in gs_walls]).fmt(2),
            Spread.of([n_trials / w for w in tf_walls]).fmt(2),
        ],
    ]
    sizes = ", ".join(f"{lib} {_grid_size(p['grid'])}" for lib, p in spec["search"].items())
    header = [
        "",
        f"GridSearchCV(n_jobs={CORES}, refit=False)",
        f"tunefleet, {CORES} workers x 1 thread",
    ]
    body = f"""
{n_trials} trials ({sizes}),
`{data["kind"]}` {data["n_samples"]:,} x {data["n_features"]}, {folds}-fold stratified CV, accuracy;
{folds * n_trials} fits per side. Median of {reps} repetitions (min..max).

{table(header, rows)}

**Speed-up (GridSearchCV wall / tunefleet wall): {Spread.of(ratios).fmt(2, "x")}**
(median of the per-repetition ratios; the target is >= 1.3x).

Scores: {exact} of {compared} trial scores (every trial of every repetition) are bit-for-bit
equal to GridSearchCV's
`mean_test_score`; the largest difference is {max_diff:.3g} (the requirement is <= 1e-9).
tunefleet's time includes the broker, the publisher, the workers' dataset load and the
collector's writes to MongoDB: from `Client.submit` to the `stored_at` of the last result.
GridSearchCV's is the three `fit` calls, its loky workers already started.
"""
    write_section("gridsearch", "1. Against GridSearchCV on the same cores", body)


def _report_efficiency(
    spec: dict[str, Any],
    n_trials: int,
    reps: int,
    tf_walls: list[float],
    training: list[float],
    efficiencies: list[float],
) -> None:
    rows = [
        ["wall time, s", Spread.of(tf_walls).fmt(1)],
        ["training seconds (sum of fit + score over trials)", Spread.of(training).fmt(1)],
        [f"efficiency = training / ({CORES} cores x wall)", Spread.of(efficiencies).fmt(3)],
    ]
    body = f"""
The tunefleet runs of benchmark 1 ({n_trials} trials of {", ".join(spec["search"])},
{CORES} workers x 1 thread on {CORES} cores), median of {reps} repetitions (min..max).
Training seconds are the workers' own `fit_time_s + score_time_s` of each stored trial.

{table(["", "tunefleet"], rows)}

Target: >= 0.95.
"""
    write_section("efficiency", "5. Efficiency", body)


if __name__ == "__main__":
    child(sys.argv[1])
