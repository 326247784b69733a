"""Deterministic trial ids, scikit-learn's ParameterGrid order, and configurations (a trial's
parameters less its number of rounds)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Iterator, Mapping, Sequence

from tunefleet_contract.rules import Scalar

__all__ = ["configuration", "grid_points", "trial_id"]


def trial_id(study_id: str, library: str, params: Mapping[str, Scalar], scoring: str = "") -> str:
    """Same study, scoring (`validation.scoring_key`), library and parameters → same id, however
    the grid was written. A resume with a fixed spec keeps the study id, so a trial the fix did
    not touch keeps its id, and its result."""
    key = json.dumps([study_id, scoring, library, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def grid_points(grid: Mapping[str, Sequence[Scalar]]) -> Iterator[dict[str, Scalar]]:
    """The points of one grid in sklearn.model_selection.ParameterGrid's order (keys sorted, the
    last varying fastest), without importing scikit-learn into the planner's hot path."""
    keys = sorted(grid)
    if not keys:
        yield {}
        return
    sizes = [len(grid[k]) for k in keys]
    index = [0] * len(keys)
    while True:
        yield {k: grid[k][i] for k, i in zip(keys, index, strict=True)}
        pos = len(keys) - 1
        while pos >= 0:
            index[pos] += 1
            if index[pos] < sizes[pos]:
                break
            index[pos] = 0
            pos -= 1
        if pos < 0:
            return


def configuration(params: Mapping[str, Scalar], rounds: str) -> tuple[Hashable, ...]:
    """The parameters but the rounds, as a key: what a family's members, and an ASHA
    configuration's trials at each rung, share. Typed: 1, 1.0 and true stay apart."""
    return tuple(sorted((k, type(v).__name__, v) for k, v in params.items() if k != rounds))
