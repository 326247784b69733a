"""Random search: the first `n_trials` distinct seeded draws from the library's space."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from tunefleet_contract.search.space import SearchSpec, checked, sample_space
from tunefleet_contract.search.strategy import Decision, SearchKind, Strategy, first_distinct

__all__ = ["KIND", "RandomSpec", "RandomStrategy"]


class RandomSpec(SearchSpec):
    """`n_trials` distinct points drawn from `space`, seeded (by default with cv.seed)."""

    key: ClassVar[str] = "random"


class RandomStrategy(Strategy[RandomSpec]):
    """Decides all of its trials up front, skipping points the library has already. The draws
    depend only on the seed, the library's name and its space: adding a library to a study does
    not change another library's trials, and raising `n_trials` keeps the points drawn."""

    @property
    def key(self) -> str:
        return self.spec.key

    def initial(self) -> Iterator[Decision]:
        library = self.context.library
        seed = self.spec.seed_or(self.context.seed)
        points = sample_space(self.spec, self.context.fixed, seed, library)
        decisions = (self.context.decision(checked(library, self.key, p), self.key) for p in points)
        return first_distinct(decisions, self.context.taken, self.spec.n_trials)


KIND = SearchKind("random", RandomSpec, RandomStrategy, precedence=10)
