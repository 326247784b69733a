"""The planner's building blocks: deterministic trial ids, scikit-learn ParameterGrid order,
seeded draws from a search space, chunks (that keep families whole)."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tunefleet_contract.families import families
from tunefleet_contract.messages import TrialSpec
from tunefleet_contract.params import Scalar
from tunefleet_contract.spec import Distribution, RandomSearch

__all__ = ["chunked", "family_chunks", "grid_points", "sample_space", "trial_id"]


def trial_id(study_id: str, library: str, params: dict[str, Scalar], scoring: str = "") -> str:
    """Same study, scoring (`validation.scoring_key`), library and parameters → same id, however
    the grid was written. A resume with a fixed spec keeps the study id, so a trial the fix did
    not touch keeps its id, and its result."""
    key = json.dumps([study_id, scoring, library, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def grid_points(grid: dict[str, list[Scalar]]) -> Iterator[dict[str, Scalar]]:
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


def _draw(dist: Distribution, u: float) -> Scalar:
    # Only Random.random() is used: its sequence for a given seed is guaranteed stable across
    # Python versions, unlike randrange/choice, so a spec samples the same trials everywhere.
    if dist.uniform is not None:
        low, high = dist.uniform
        return low + (high - low) * u
    if dist.loguniform is not None:
        low, high = dist.loguniform
        return math.exp(math.log(low) + (math.log(high) - math.log(low)) * u)
    if dist.integer is not None:
        low_i, high_i = dist.integer
        if dist.log:
            value = math.exp(math.log(low_i) + (math.log(high_i + 1) - math.log(low_i)) * u)
            return min(high_i, max(low_i, math.floor(value)))
        return min(high_i, low_i + math.floor((high_i - low_i + 1) * u))
    assert dist.choice is not None
    return dist.choice[min(len(dist.choice) - 1, math.floor(len(dist.choice) * u))]


def sample_space(
    search: RandomSearch, fixed: dict[str, Scalar], seed: int, library: str, stream: str = ""
) -> Iterator[dict[str, Scalar]]:
    """Endless seeded draws (fixed parameters included); the caller keeps the distinct ones.

    The stream depends only on the seed, the library's name, `stream` (one per kind of search,
    so that two searches of one library with one seed draw different points) and its space:
    adding a library to a study does not change another library's trials.
    """
    rng = random.Random(f"tunefleet:{seed}:{library}" + (f":{stream}" if stream else ""))
    order = search.order()
    while True:
        point: dict[str, Scalar] = dict(fixed)
        for name in order:
            dist = search.space[name]
            if dist.holds(point):
                point[name] = _draw(dist, rng.random())
        yield point


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


def family_chunks(trials: Iterable[TrialSpec], size: int) -> Iterator[list[TrialSpec]]:
    """Chunks of up to `size` trials that never split a family (`tunefleet_contract.families`):
    a worker scores a family with one fit per fold only when it has all of it. A family larger
    than `size` is a chunk of its own."""
    chunk: list[TrialSpec] = []
    for family in families(trials):
        if chunk and len(chunk) + len(family) > size:
            yield chunk
            chunk = []
        chunk.extend(family)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
