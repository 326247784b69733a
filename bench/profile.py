"""Where a trial's time goes, before and after the fold cache (pyinstrument, in-process).

The same trials of benchmark 1's grid, fitted from scratch for every fold (what GridSearchCV
does, `reuse_structures=False`) and with the worker's fold cache, on one thread. The profile's
samples are attributed to the innermost phase they are in: building the binned training set,
boosting, predicting + scoring, or everything else.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Spread, table, write_section
from bench.studies import gridsearch_spec

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


def run(reps: int, quick: bool) -> None:
    from pyinstrument import Profiler
    from tunefleet_publisher.strategies import expand
    from tunefleet_runtime.validation import parse_spec
    from tunefleet_worker import foldcache
    from tunefleet_worker.datasets import load_dataset
    from tunefleet_worker.training import TrialContext, run_trial

    spec = parse_spec(gridsearch_spec(quick))
    dataset = load_dataset(spec.dataset)
    per_library = 2 if quick else 8
    rows = []
    speedups = []
    for library in spec.search:
        trials = [t for t in expand(spec, "profile") if t.library == library][:per_library]
        # Imports and the dataset's first slicing are start-up costs, not a trial's: warm up.
        warm = TrialContext("warm", dataset, "accuracy", spec.cv.folds, 1, "warm", 1, 1)
        run_trial(warm, trials[0])
        walls: dict[bool, list[float]] = {False: [], True: []}
        shares: dict[bool, dict[str, float]] = {}
        for rep in range(reps):
            for reuse in (False, True):
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
                    reuse_structures=reuse,
                )
                profiler = Profiler(interval=0.002) if rep == 0 else None
                if profiler is not None:
                    profiler.start()
                started = time.perf_counter()
                for trial in trials:
                    result = run_trial(ctx, trial)
                    if result.status != "done":
                        raise RuntimeError(result.error)
                walls[reuse].append((time.perf_counter() - started) / len(trials))
                if profiler is not None:
                    profiler.stop()
                    totals = dict.fromkeys(PHASES, 0.0)
                    session = profiler.last_session
                    assert session is not None
                    _attribute(session.root_frame(), "other", totals)
                    whole = sum(totals.values()) or 1.0
                    shares[reuse] = {k: 100 * v / whole for k, v in totals.items()}
        speedup = Spread.of([a / b for a, b in zip(walls[False], walls[True], strict=True)])
        speedups.append((library, speedup))
        for reuse in (False, True):
            rows.append(
                [
                    library,
                    "fold cache" if reuse else "from scratch (as GridSearchCV)",
                    Spread.of(walls[reuse]).fmt(3),
                ]
                + [f"{shares[reuse][p]:.0f}%" for p in PHASES]
            )
    gains = "; ".join(f"{lib} {s.fmt(2, 'x')}" for lib, s in speedups)
    body = f"""
{per_library} trials per library from benchmark 1's grid, {spec.cv.folds} folds each, 1 thread,
in one process; seconds per trial, median of {reps} repetitions (min..max), and the share of
the first repetition's pyinstrument samples in each phase. CatBoost quantizes inside its native
`_train` when given arrays, so from scratch its quantization counts as boosting.

{table(["library", "path", "s per trial", *PHASES], rows)}

Training alone, from scratch / fold cache: {gains}.
"""
    write_section("profile", "Profile: where a trial's time goes", body)
