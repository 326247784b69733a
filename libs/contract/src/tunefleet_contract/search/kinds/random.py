"""Random search: the first `n_trials` distinct seeded draws from the library's space."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from tunefleet_contract.search.space import SearchSpec, checked, sample_space
from tunefleet_contract.search.strategy import Decision, SearchKind, Strategy

__all__ = ["KIND", "RandomSpec", "RandomStrategy"]

# Draws per wanted trial before a random search gives up finding new distinct points (a small
# discrete space, or conditions that make most combinations impossible).
_DRAWS_PER_TRIAL = 50


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
        library, taken = self.context.library, self.context.taken
        seed = self.spec.seed_or(self.context.seed)
        wanted = self.spec.n_trials
        budget = wanted * _DRAWS_PER_TRIAL + 1000
        found = 0
        for point in sample_space(self.spec, self.context.fixed, seed, library):
            budget -= 1
            if budget < 0:
                break
            decision = self.context.decision(checked(library, self.key, point), self.key)
            if decision.trial_id in taken:
                continue
            found += 1
            yield decision  # recorded in `taken` before this resumes
            if found == wanted:
                break


KIND = SearchKind("random", RandomSpec, RandomStrategy, precedence=10)
