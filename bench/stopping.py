"""What the early-stopping benchmark (`bench.early_stopping`) computes, kept apart to be tested:
the configurations of a random search, the `n_estimators` grid over them, each side's run and
the issue's bars.

Every side evaluates the same configurations: those a tunefleet random search of the spec draws
(`random_points`). The grid side crosses each of them with an `n_estimators` axis
(`rounds_grid`: one grid per configuration, so that each is a family and one fit per fold scores
its every value), the early stopping sides let the validation curve choose the rounds, and
Optuna's side has them enqueued in that order.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tunefleet_contract.rules import Scalar
from tunefleet_contract.search.plan import Searches
from tunefleet_contract.spec import StudySpec

__all__ = [
    "Bars",
    "Run",
    "Trial",
    "bars",
    "grid_spec",
    "paired",
    "random_points",
    "rounds_grid",
]


def random_points(spec: StudySpec, library: str) -> list[dict[str, Scalar]]:
    """The parameters of the library's trials as the planner decides them up front (its grid
    and random search; fixed parameters included), in planning order."""
    searches = Searches({library: spec.search[library]}, "", "", spec.cv.seed)
    return [dict(d.params) for d in searches.initial()]


def rounds_grid(
    points: Sequence[Mapping[str, Scalar]],
    fixed: Mapping[str, Scalar],
    rounds_param: str,
    rounds: Sequence[int],
) -> list[dict[str, list[Scalar]]]:
    """A list of grids (their union is the study's grid): each point, without its fixed
    parameters, crossed with every value of `rounds` for `rounds_param`."""
    if not rounds:
        raise ValueError("the rounds grid needs at least one value")
    grids = []
    for point in points:
        if rounds_param in point:
            raise ValueError(f"{rounds_param} is already set in {dict(point)}")
        grid: dict[str, list[Scalar]] = {k: [v] for k, v in point.items() if k not in fixed}
        grid[rounds_param] = list(rounds)
        grids.append(grid)
    return grids


def grid_spec(
    spec: Mapping[str, Any],
    library: str,
    points: Sequence[Mapping[str, Scalar]],
    rounds_param: str,
    rounds: Sequence[int],
) -> dict[str, Any]:
    """The same study with the library's early stopping and random search replaced by the
    `rounds` grid over `points` (everything else, the fixed parameters included, as it was)."""
    out = copy.deepcopy(dict(spec))
    part = out["search"][library]
    fixed = part.get("fixed", {})
    out["search"][library] = {
        "fixed": fixed,
        "grid": rounds_grid(points, fixed, rounds_param, rounds),
    }
    out["name"] = f"{out['name']}-grid"
    return out


@dataclass(frozen=True)
class Trial:
    """One configuration's evaluation on one side."""

    score: float | None  # mean over the folds of the scorer (greater is better); None: pruned
    fit_s: float  # seconds training (and evaluating per round), summed over the folds
    rounds: int | None  # the rounds it was scored at (grid: its n_estimators)
    trained: int | None = None  # rounds trained per fold (None: not known)
    stopped: bool = False  # stopped across trials (tunefleet's median rule, Optuna's pruner)


@dataclass(frozen=True)
class Run:
    """One side's run of one study."""

    trials: tuple[Trial, ...]
    wall_s: float

    @property
    def best(self) -> float:
        scores = [t.score for t in self.trials if t.score is not None]
        if not scores:
            raise ValueError("no trial has a score: no best")
        return max(scores)

    @property
    def fit_s(self) -> float:
        return sum(t.fit_s for t in self.trials)

    @property
    def stopped(self) -> int:
        return sum(t.stopped for t in self.trials)


def paired(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Per seed, a - b."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} against {len(b)} seeds")
    return [x - y for x, y in zip(a, b, strict=True)]


@dataclass(frozen=True)
class Bars:
    """The issue's bars for one dataset, each True where it is met."""

    within_grid_spread: bool  # the median best at least the lowest of the grid's bests
    half_grid_fit: bool  # the median of per-seed fit seconds / the grid's <= 0.5
    no_worse_than_peer: bool  # the median of per-seed best minus the peer's >= 0
    faster_than_peer: bool  # the median of per-seed wall time / the peer's < 1

    @property
    def met(self) -> bool:
        return (
            self.within_grid_spread
            and self.half_grid_fit
            and self.no_worse_than_peer
            and self.faster_than_peer
        )


def bars(es: Sequence[Run], grid: Sequence[Run], peer: Sequence[Run] | None) -> Bars:
    """The bars of early stopping (`es`) against the grid and Optuna's pruning (`peer`; None
    where Optuna is not installed: its bars are not met), per seed paired where they pair."""
    best = statistics.median(r.best for r in es)
    fit = statistics.median(e.fit_s / g.fit_s for e, g in zip(es, grid, strict=True))
    if peer is None:
        return Bars(best >= min(r.best for r in grid), fit <= 0.5, False, False)
    diff = statistics.median(paired([r.best for r in es], [r.best for r in peer]))
    wall = statistics.median(e.wall_s / p.wall_s for e, p in zip(es, peer, strict=True))
    return Bars(best >= min(r.best for r in grid), fit <= 0.5, diff >= 0, wall < 1)
