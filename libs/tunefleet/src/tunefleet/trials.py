"""Turning a spec into trials: scikit-learn ParameterGrid semantics, deterministic ids."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import TypeVar

from tunefleet.messages import TrialSpec
from tunefleet.params import Scalar
from tunefleet.spec import StudySpec

__all__ = ["chunked", "expand", "trial_id"]


def trial_id(study_id: str, library: str, params: dict[str, Scalar]) -> str:
    """Same study, library and parameters → same id, however the grid was written."""
    key = json.dumps([study_id, library, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _grid_points(grid: dict[str, list[Scalar]]) -> Iterator[dict[str, Scalar]]:
    # The same order as sklearn.model_selection.ParameterGrid (keys sorted, last varies
    # fastest), without importing scikit-learn into the publisher's hot path.
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


def expand(spec: StudySpec, study_id: str) -> Iterator[TrialSpec]:
    """Every trial of the study, lazily: a 10^6-point grid never sits in memory at once."""
    seen: set[str] = set()
    for library, part in spec.search.items():
        for grid in part.grids():
            for point in _grid_points(grid):
                params = {**part.fixed, **point}
                tid = trial_id(study_id, library, params)
                # A list of grids may name the same point twice; it is one trial.
                if tid in seen:
                    continue
                seen.add(tid)
                yield TrialSpec(trial_id=tid, library=library, params=params)


T = TypeVar("T")


def chunked(items: Iterator[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
