"""Quasi-random search: the first `n_trials` distinct points of a scrambled Sobol' sequence
(scipy.stats.qmc.Sobol, seeded), mapped onto the space.

A Sobol' sequence is low-discrepancy: its points cover the space more evenly than independent
random draws (in a block of 2^m points, every cell of a regular partition of the unit cube into
2^m cells holds one), so a small budget already spans every region of every parameter. Each
parameter of the space is one dimension, in the space's order; a point's coordinate u in
[0, 1) becomes a value as a random draw's does (`BaseDistribution.draw`); a conditional
parameter whose condition does not hold leaves its coordinate unused. Like random search it
decides everything up front, and a point the library has already (its grid's, or a repeat in a
small discrete space) is skipped for the next one.

The points depend on the seed (the section's, else the study's), the library's name and the
space; scipy draws them in blocks whose sizes keep the sequence's balance (powers of two).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from typing import ClassVar

from tunefleet_contract.rules import Scalar
from tunefleet_contract.search.space import SearchSpec, checked
from tunefleet_contract.search.strategy import Decision, SearchKind, Strategy, first_distinct

__all__ = ["KIND", "SobolSpec", "SobolStrategy"]


class SobolSpec(SearchSpec):
    """`n_trials` distinct points of a scrambled Sobol' sequence over `space`, seeded (by
    default with cv.seed)."""

    key: ClassVar[str] = "sobol"


def _unit_points(dimensions: int, seed: int, first: int) -> Iterator[Sequence[float]]:
    """The scrambled sequence, endless: a first block of `first` (a power of two) points, then
    blocks that double it, so that every prefix drawn is a balanced one."""
    from scipy.stats import qmc

    sampler = qmc.Sobol(d=dimensions, scramble=True, rng=seed)
    yield from sampler.random_base2(int(math.log2(first)))
    while True:
        yield from sampler.random_base2(int(math.log2(sampler.num_generated)))


class SobolStrategy(Strategy[SobolSpec]):
    @property
    def key(self) -> str:
        return self.spec.key

    def _seed(self) -> int:
        key = f"tunefleet-sobol:{self.spec.seed_or(self.context.seed)}:{self.context.library}"
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")

    def _points(self) -> Iterator[dict[str, Scalar]]:
        order = self.spec.order()
        first = 1 << max(1, math.ceil(math.log2(self.spec.n_trials)))
        for unit in _unit_points(len(order), self._seed(), first):
            point: dict[str, Scalar] = dict(self.context.fixed)
            for name, u in zip(order, unit, strict=True):
                dist = self.spec.space[name]
                if dist.holds(point):
                    point[name] = dist.draw(float(u))
            yield point

    def initial(self) -> Iterator[Decision]:
        library = self.context.library
        decisions = (
            self.context.decision(checked(library, self.key, p), self.key) for p in self._points()
        )
        return first_distinct(decisions, self.context.taken, self.spec.n_trials)


KIND = SearchKind("sobol", SobolSpec, SobolStrategy, precedence=20)
