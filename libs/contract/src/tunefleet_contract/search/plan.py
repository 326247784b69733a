"""A study's searches driven together: per library its grid, then each of its searches in
precedence order, and the one record of what each library has decided, which the strategies
read (`SearchContext.taken`) and only this driver writes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from tunefleet_contract.rules import Scalar
from tunefleet_contract.search.grid import Grids, GridStrategy
from tunefleet_contract.search.kinds import search_kinds
from tunefleet_contract.search.space import SearchSpec
from tunefleet_contract.search.strategy import (
    Decision,
    Outcome,
    Recorded,
    SearchContext,
    Strategy,
)

__all__ = ["LibraryPart", "Searches", "prepare"]


class LibraryPart(Protocol):
    """What the searches need of a library's part of a spec (`spec.LibrarySearch`)."""

    @property
    def fixed(self) -> Mapping[str, Scalar]: ...

    def grids(self) -> Grids: ...

    def searches(self) -> Sequence[SearchSpec]:
        """Its sampled searches, in precedence order."""
        ...


class Searches:
    """Every search of a study, in planning order (libraries in the spec's order)."""

    def __init__(
        self, parts: Mapping[str, LibraryPart], study_id: str, scoring: str, seed: int
    ) -> None:
        self._taken: dict[str, set[str]] = {}
        self.strategies: list[Strategy[Any]] = []
        kinds = search_kinds()
        for library, part in parts.items():
            taken = self._taken.setdefault(library, set())
            context = SearchContext(study_id, scoring, library, part.fixed, seed, taken)
            self.strategies.append(GridStrategy(part.grids(), context))
            self.strategies.extend(kinds[spec.key].start(spec, context) for spec in part.searches())

    @property
    def reactive(self) -> list[Strategy[Any]]:
        return [s for s in self.strategies if s.reactive]

    @property
    def undecided(self) -> int:
        """Trials the reactive searches have still to decide."""
        return sum(s.undecided for s in self.strategies)

    @property
    def done(self) -> bool:
        return all(s.done for s in self.strategies)

    def waiting(self) -> list[Decision]:
        """Decisions of the reactive searches still without a result, in decision order."""
        return [decision for strategy in self.strategies for decision in strategy.waiting()]

    def _recorded(self, decisions: Iterable[Decision]) -> Iterator[Decision]:
        for decision in decisions:
            self._taken[decision.library].add(decision.trial_id)
            yield decision

    def initial(self) -> Iterator[Decision]:
        """Every trial decided before any result, lazily, in planning order."""
        return self.decide((), {})

    def decide(
        self, recorded: Sequence[Recorded], outcomes: Mapping[str, Outcome]
    ) -> Iterator[Decision]:
        """The trial set so far, lazily, in planning order. The up-front searches decide again
        what they decided (it follows from the spec); a reactive search is first restored from
        what was `recorded` of its library (the store's plan) that no up-front search decides
        now, and the stored `outcomes`, then decides what it can now."""
        for strategy in self.strategies:
            library = strategy.context.library
            taken = self._taken[library]
            if strategy.reactive:
                strategy.restore(
                    [r for r in recorded if r.library == library and r.trial_id not in taken],
                    outcomes,
                )
            for decision in strategy.initial():
                taken.add(decision.trial_id)  # before the strategy resumes: it reads `taken`
                yield decision

    def react(self, trial_id: str, outcome: Outcome) -> list[Decision]:
        """What the searches decide on a result (each reactive one tops up)."""
        return [
            decision
            for strategy in self.reactive
            for decision in self._recorded(strategy.react(trial_id, outcome))
        ]


def prepare() -> None:
    """Load and set up what the search kinds decide with, once, in a process that will decide
    (the planner, a benchmark): not at import, and not in a process that only reads specs."""
    for kind in search_kinds().values():
        if kind.prepare is not None:
            kind.prepare()
