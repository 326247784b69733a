"""Where a trial's time goes: from scratch, with the fold cache, and with families too
(pyinstrument, in-process).

One family per library of the realistic grid (four n_estimators values, `bench.studies`),
fitted from scratch for every trial and fold (what GridSearchCV does, `reuse_structures=False`),
with the worker's fold cache, and with the fold cache and one fit per fold for the family, on
one thread. The profile's samples are attributed to the innermost phase they are in: building
the binned training set, boosting, predicting + scoring, or everything else.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Spread, table, write_section
from bench.studies import realistic_spec

PHASES = ("build training set", "boosting", "predict + score", "other")
_BUILD = {("Dataset", "construct"), ("Pool", "quantize")}
_LIBRARIES = ("xgboost", "lightgbm", "catboost")


def _phase(frame: Any, current: str) -> str:
    name, cls, path = frame.function, frame.class_name or "", frame.file_path or ""
    if name == "_create_dmatrix" or (cls, name) in _BUILD:
        return "build training set"
    if name in {"train", "_train"} and any(lib in path for lib in _LIBRARIES):
        return "boosting" if current != "build training set" else current
    if cls == "_Scorer" or (name == "_score" and "sklearn" in path):
        return "predict + score"
    return current


def _attribute(frame: Any, current: str, totals: dict[str, float]) -> None:
    phase = _phase(frame, current)
    children = list(frame.children)
    own = frame.time - sum(child.time for child in children)
    totals[phase] += max(own, 0.0)
    for child in children:
        _attribute(child, phase, totals)


PATHS = ("from scratch (as GridSearchCV)", "fold cache", "fold cache + families")


def run(reps: int, quick: bool) -> None:
    from pyinstrument import Profiler
    from tunefleet_contract.families import families
    from tunefleet_publisher.planner import expand
    from tunefleet_runtime.validation import parse_spec
    from tunefleet_worker import foldcache
    from tunefleet_worker.datasets import load_dataset
    from tunefleet_worker.families import run_family
    from tunefleet_worker.training import TrialContext, run_trial

    spec = parse_spec(realistic_spec(quick))
    dataset = load_dataset(spec.dataset)
    rows = []
    speedups = []
    for library in spec.search:
        family = families(t for t in expand(spec, "profile") if t.library == library)[0]
        # Imports and the dataset's first slicing are start-up costs, not a trial's: warm up.
        warm = TrialContext("warm", dataset, "accuracy", spec.cv.folds, 1, "warm", 1, 1)
        run_trial(warm, family[0])
        walls: dict[str, list[float]] = {path: [] for path in PATHS}
        shares: dict[str, dict[str, float]] = {}
        for rep in range(reps):
            for path in PATHS:
                foldcache.clear()
                ctx = TrialContext(
                    study_id="profile",
                    dataset=dataset,
                    metric=spec.metric or "accuracy",
                    folds=spec.cv.folds,
                    seed=spec.cv.seed,
                    worker="profile",
                    attempts=1,
                    threads=1,
                    reuse_structures=path != PATHS[0],
                )
                profiler = Profiler(interval=0.002) if rep == 0 else None
                if profiler is not None:
                    profiler.start()
                started = time.perf_counter()
                if path == PATHS[2]:
                    results = run_family(ctx, family)
                else:
                    results = [run_trial(ctx, trial) for trial in family]
                walls[path].append((time.perf_counter() - started) / len(family))
                if profiler is not None:
                    profiler.stop()
                    totals = dict.fromkeys(PHASES, 0.0)
                    session = profiler.last_session
                    assert session is not None
                    _attribute(session.root_frame(), "other", totals)
                    whole = sum(totals.values()) or 1.0
                    shares[path] = {k: 100 * v / whole for k, v in totals.items()}
                failed = [r.error for r in results if r.status != "done"]
                if failed:
                    raise RuntimeError(failed[0])
        for path in PATHS[1:]:
            ratio = [a / b for a, b in zip(walls[PATHS[0]], walls[path], strict=True)]
            speedups.append((library, path, Spread.of(ratio)))
        for path in PATHS:
            rows.append(
                [library, path, Spread.of(walls[path]).fmt(3)]
                + [f"{shares[path][p]:.0f}%" for p in PHASES]
            )
    gains = "; ".join(f"{lib} {path} {s.fmt(2, 'x')}" for lib, path, s in speedups)
    body = f"""
One family per library of the realistic grid (benchmark 1b): the four trials that differ only
in their rounds (the grid's first point of each library, every rounds value), {spec.cv.folds} folds,
1 thread, in one process; seconds per trial, median of {reps} repetitions (min..max), and the
share of the first repetition's pyinstrument samples in each phase. CatBoost quantizes inside
its native `_train` when given arrays, so from scratch its quantization counts as boosting.
With families, "predict + score" is every member's prediction from the one model, cut after
its rounds.

{table(["library", "path", "s per trial", *PHASES], rows)}

Speed-up against from scratch: {gains}.
"""
    write_section("profile", "Profile: where a trial's time goes", body)
