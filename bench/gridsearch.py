"""Benchmarks 1 and 5: tunefleet against GridSearchCV and the other tools a user would pick,
on the same cores, same grid, same folds; and how close tunefleet comes to its limit.

Two grids: benchmark 1's (144 trials, fixed rounds) and a realistic one with an n_estimators
axis and deeper trees (`bench.studies`). Every peer (`bench.peers`) runs in a fresh process per
repetition with the libraries imported and its workers started before the clock; tunefleet
runs as a fresh pipeline of 2 workers x 1 thread per repetition, timed from `submit` to the
collector's write of the last result to MongoDB. The order of the sides rotates from one
repetition to the next, so a drift in the machine's load hits all of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunefleet_dev.devservices import Services

from bench.common import (
    CORES,
    Spread,
    in_fresh_process,
    run_study,
    services_up,
    table,
    write_section,
)
from bench.peers import LABELS, PEERS, installed
from bench.studies import gridsearch_spec, realistic_spec

BASELINES = ("gridsearch-2x1", "gridsearch-1x2")
REFERENCE = "gridsearch-2x1"  # whose scores every side is compared with
# Sides run in the first repetition only (`--once`): on a loaded machine a slow peer's three
# repetitions can cost more than the time there is; the report says which ran once.
ONCE: frozenset[str] = frozenset()
# Which peers run on which grid. Benchmark 1's grid is the long one (about 80 s per side):
# every peer on it would take `make bench` past 20 minutes, so it keeps the comparison its
# 1.3x target was set against; the realistic grid has the whole field.
GRIDS: dict[str, tuple[Callable[[bool], dict[str, Any]], tuple[str, ...]]] = {
    "gridsearch": (gridsearch_spec, ("gridsearch-2x1",)),
    "peers": (realistic_spec, PEERS),
}
Key = tuple[str, str]


def _key(library: str, params: dict[str, Any]) -> Key:
    return library, json.dumps(params, sort_keys=True)


def _grid_size(grid: dict[str, list[Any]]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size


@dataclass
class Comparison:
    """Every side's wall times over the repetitions, and its scores' distance to GridSearchCV."""

    sides: list[str]
    walls: dict[str, dict[int, float]] = field(default_factory=dict)  # side -> rep -> wall
    max_diff: dict[str, float] = field(default_factory=dict)
    training: list[float] = field(default_factory=list)  # tunefleet's fit + score seconds
    fitting: list[float] = field(default_factory=list)  # tunefleet's fit seconds
    fits: int = 0  # tunefleet's fits per repetition: one per family and fold

    def ratios(self, over: tuple[str, ...]) -> list[float]:
        """Per repetition: the fastest of `over` that ran in it / tunefleet."""
        return [
            min(w[i] for s, w in self.walls.items() if s in over and i in w) / wall
            for i, wall in self.walls["tunefleet"].items()
        ]


def compare(
    services: Services, name: str, spec: dict[str, Any], peers: tuple[str, ...], reps: int
) -> Comparison:
    n_trials = sum(_grid_size(part["grid"]) for part in spec["search"].values())
    sides = [s for s in peers if installed(s)] + ["tunefleet"]
    result = Comparison(sides=sides)
    for rep in range(reps):
        order = sides[rep % len(sides) :] + sides[: rep % len(sides)]
        runs: dict[str, dict[str, Any]] = {}
        for side in order:
            if rep > 0 and side in ONCE:
                continue
            runs[side] = (
                run_study(services, spec, n_trials)
                if side == "tunefleet"
                else in_fresh_process("bench.peers", side, spec)
            )
            result.walls.setdefault(side, {})[rep] = runs[side]["wall_s"]
        expected = {_key(lib, params): mean for lib, params, mean in runs[REFERENCE]["scores"]}
        for side in runs:
            got = {_key(lib, params): mean for lib, params, mean in runs[side]["scores"]}
            if set(got) != set(expected):
                raise RuntimeError(f"{side} scored {len(got)} trials, GridSearchCV {len(expected)}")
            diff = max(abs(got[k] - expected[k]) for k in expected)
            result.max_diff[side] = max(result.max_diff.get(side, 0.0), diff)
        docs = runs["tunefleet"]["docs"]
        result.fitting.append(sum(d["fit_time_s"] for d in docs))
        result.training.append(sum(d["fit_time_s"] + d["score_time_s"] for d in docs))
        result.fits = spec["cv"]["folds"] * sum(1 / d["fit_shared_by"] for d in docs)
        print(
            f"{name} rep {rep + 1}: "
            + ", ".join(f"{side} {result.walls[side][rep]:.1f} s" for side in runs),
            flush=True,
        )
    return result


def _run(name: str, reps: int, quick: bool) -> None:
    make_spec, peers = GRIDS[name]
    spec = make_spec(quick)
    with services_up() as services:
        comparison = compare(services, name, spec, peers, reps)
    _report(name, spec, comparison, reps)
    _report_limit(name, comparison, reps)


def run(reps: int, quick: bool) -> None:
    """Benchmark 1 and 5: benchmark 1's grid against GridSearchCV, and the efficiency."""
    _run("gridsearch", reps, quick)


def run_peers(reps: int, quick: bool) -> None:
    """Benchmark 1b: the realistic grid against every peer, and how close to the limit."""
    _run("peers", reps, quick)


def _describe(spec: dict[str, Any]) -> str:
    data = spec["dataset"]
    sizes = ", ".join(f"{lib} {_grid_size(p['grid'])}" for lib, p in spec["search"].items())
    n_trials = sum(_grid_size(p["grid"]) for p in spec["search"].values())
    axes = "; ".join(
        f"{lib}: {', '.join(f'{k} {v}' for k, v in p['grid'].items())}"
        for lib, p in spec["search"].items()
    )
    return (
        f"{n_trials} trials ({sizes}) on `{data['kind']}` {data['n_samples']:,} x "
        f"{data['n_features']}, {spec['cv']['folds']}-fold stratified CV, {spec['metric']}. "
        f"Axes: {axes}"
    )


def _report(name: str, spec: dict[str, Any], c: Comparison, reps: int) -> None:
    n_trials = sum(_grid_size(p["grid"]) for p in spec["search"].values())
    baseline = Spread.of(c.ratios(BASELINES))
    peers = tuple(s for s in c.sides if s != "tunefleet")
    fastest = Spread.of(c.ratios(peers))
    rows = []
    for side in c.sides:
        vs = [
            min(w[i] for b, w in c.walls.items() if b in BASELINES and i in w) / wall
            for i, wall in c.walls[side].items()
        ]
        rows.append(
            [
                LABELS[side],
                Spread.of(list(c.walls[side].values())).fmt(1),
                Spread.of([n_trials / w for w in c.walls[side].values()]).fmt(2),
                Spread.of(vs).fmt(2, "x"),
                f"{c.max_diff[side]:.3g}",
            ]
        )
    ran_once = [LABELS[s] for s in c.sides if len(c.walls[s]) == 1 < reps]
    once = f"; run in the first repetition only: {', '.join(ran_once)}" if ran_once else ""
    missing = [LABELS[s] for s in GRIDS[name][1] if s not in c.sides]
    absent = f"\nNot installed here, so not measured: {', '.join(missing)}.\n" if missing else ""
    header = ["side", "wall time, s", "trials/s", "speed-up vs GridSearchCV", "max abs score diff"]
    if name == "gridsearch":
        title = "1. Against GridSearchCV, benchmark 1's grid"
        claim = f"**tunefleet against GridSearchCV: {baseline.fmt(2, 'x')}**"
        target = ">= 1.3x"
        scope = (
            f"On this grid only `GridSearchCV(n_jobs={CORES})` runs beside tunefleet: every peer "
            "on it would take `make bench` past 20 minutes (`GRIDS` in bench/gridsearch.py); "
            "the whole field runs on the realistic grid (1b)."
        )
    else:
        title = "1b. Against every peer, a realistic grid with an n_estimators axis"
        claim = (
            f"**tunefleet against the faster GridSearchCV configuration: {baseline.fmt(2, 'x')}; "
            f"against the fastest peer of each repetition: {fastest.fmt(2, 'x')}**"
        )
        target = ">= 2x against the fastest peer, with max abs score diff 0"
        scope = (
            "Optuna's GridSampler may hand the same grid point to both of its threads near the "
            "end of a grid (it then runs that point twice); that is part of its time."
        )
    body = f"""
{_describe(spec)}. Median of {reps} repetitions (min..max), the sides in rotating order{once}.

{table(header, rows)}
{absent}
{claim} (medians of the per-repetition ratios; the target is {target}).

"speed-up vs GridSearchCV" is the faster GridSearchCV configuration's wall time over the side's.
Scores: every side's mean score of every trial ({n_trials}), in every repetition it ran,
against `GridSearchCV(n_jobs={CORES})`'s `mean_test_score`; "max abs score diff" is the
largest difference (0 = bit-for-bit equal). tunefleet's time includes the broker, the publisher,
the workers' dataset load and the collector's writes to MongoDB, from `Client.submit` to the
`stored_at` of the last result; each peer's is its searches, its workers already started.
{scope}
"""
    write_section(name, title, body)


def _report_limit(name: str, c: Comparison, reps: int) -> None:
    walls = list(c.walls["tunefleet"].values())
    limit = [t / CORES for t in c.training]
    rows = [
        ["fits per repetition (one per family and fold)", f"{c.fits:.0f}"],
        ["fit seconds (sum of fit_time_s)", Spread.of(c.fitting).fmt(1)],
        [
            "predict + score seconds (sum of score_time_s)",
            Spread.of([t - f for t, f in zip(c.training, c.fitting, strict=True)]).fmt(1),
        ],
        [f"limit = (fit + score) / {CORES} cores, s", Spread.of(limit).fmt(1)],
        ["wall time, s", Spread.of(walls).fmt(1)],
        [
            "efficiency = limit / wall",
            Spread.of([a / w for a, w in zip(limit, walls, strict=True)]).fmt(3),
        ],
    ]
    grid = "benchmark 1" if name == "gridsearch" else "benchmark 1b (the realistic grid)"
    body = f"""
The tunefleet runs of {grid}, {CORES} workers x 1 thread on {CORES} cores, median of {reps}
repetitions (min..max). Fit and score seconds are the workers' own `fit_time_s` and
`score_time_s` summed over the stored trials: members of a family carry equal parts of their
shared fits, so the sum is the time of one fit per family and fold. The limit is that work
spread perfectly over the cores with nothing else running; the efficiency says how close the
whole pipeline (broker, store, scheduling, the last message's tail) comes to it.

{table(["", "tunefleet"], rows)}
"""
    if name == "gridsearch":
        write_section(
            "efficiency", "5. Efficiency: how close to the limit", body + "\nTarget: >= 0.95.\n"
        )
    else:
        write_section("peers-limit", "1c. The realistic grid: how close to the limit", body)


if __name__ == "__main__":
    raise SystemExit("run `python -m bench gridsearch peers`; one peer is `python -m bench.peers`")
