"""What a search strategy is, as the planner drives it and the plan records it.

A strategy gets its section of the spec and a `SearchContext` (one constructor shape for every
strategy), gives an initial batch of `Decision`s, and may react to each result with more
(`reactive`). It never writes to anything shared: which trials the library's other searches
decided before it is `context.taken`, read-only, kept by whoever drives the strategies
(`tunefleet_contract.search.plan`). Each trial's id is deterministic, so deciding the same trial
twice, after a restart or a redelivery, is deciding it once.

A new search kind is one module in `tunefleet_contract.search.kinds` whose `KIND` is a
`SearchKind`: its section's schema (a `SearchSpec`), its strategy, and its precedence.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from tunefleet_contract.rules import Scalar
from tunefleet_contract.search.ids import trial_id
from tunefleet_contract.search.space import SearchSpec

__all__ = [
    "Decision",
    "Outcome",
    "Recorded",
    "SearchContext",
    "SearchKind",
    "Strategy",
    "first_distinct",
    "outcome_of",
]

# Points per wanted trial before an up-front search gives up finding new distinct ones (a small
# discrete space, or conditions that make most combinations impossible).
_POINTS_PER_TRIAL = 50

# A finished trial's score (greater is better), or None: it failed or scored nothing.
Outcome = float | None


def outcome_of(status: str, score: float | None) -> Outcome:
    return score if status == "done" else None


@dataclass(frozen=True, slots=True)
class Decision:
    """A trial a search decided: what the plan records (`search`, and for a search with rungs
    the `rung`), so that the read side never has to guess which search a trial was."""

    trial_id: str
    library: str
    params: dict[str, Scalar]
    search: str  # grid, random, tpe, asha, ...
    rung: int | None = None


class Recorded(Protocol):
    """A decision as a plan holds it: a `Decision`, a planned trial in a `trials.planned`
    event, or one read from the store. `search` is None in plans stored before decisions
    named their search."""

    @property
    def trial_id(self) -> str: ...

    @property
    def library(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Scalar]: ...

    @property
    def search(self) -> str | None: ...

    @property
    def rung(self) -> int | None: ...


@dataclass(frozen=True)
class SearchContext:
    """What a strategy decides within: the study, its scoring (part of every trial id), the
    library, its fixed parameters, the study's seed (a search's own `seed` overrides it), and
    the trial ids the library's searches of higher precedence decided (read-only: the same
    point is one trial, theirs)."""

    study_id: str
    scoring: str
    library: str
    fixed: Mapping[str, Scalar]
    seed: int
    taken: Collection[str] = field(default_factory=frozenset)

    def trial_id(self, params: Mapping[str, Scalar]) -> str:
        return trial_id(self.study_id, self.library, params, self.scoring)

    def decision(self, params: dict[str, Scalar], search: str, rung: int | None = None) -> Decision:
        tid = trial_id(self.study_id, self.library, params, self.scoring)
        return Decision(tid, self.library, params, search, rung)


def first_distinct(
    decisions: Iterable[Decision], taken: Container[str], wanted: int
) -> Iterator[Decision]:
    """The first `wanted` of a stream of candidate decisions whose trial the library does not
    have yet (`taken`, which the driver updates with each one yielded before this resumes), or
    fewer when the stream keeps repeating itself."""
    budget = wanted * _POINTS_PER_TRIAL + 1000
    found = 0
    for decision in decisions:
        budget -= 1
        if budget < 0:
            return
        if decision.trial_id in taken:
            continue
        found += 1
        yield decision
        if found == wanted:
            return


S = TypeVar("S")


class Strategy(ABC, Generic[S]):
    """One search of one library. `spec` is its section of the spec."""

    reactive: ClassVar[bool] = False

    def __init__(self, spec: S, context: SearchContext) -> None:
        self.spec = spec
        self.context = context

    @property
    @abstractmethod
    def key(self) -> str:
        """The search's name, as decisions record it."""

    @abstractmethod
    def initial(self) -> Iterator[Decision]:
        """The trials decided before any result, lazily: the driver records each one before
        asking for the next, so `context.taken` holds this strategy's own too."""

    def react(self, trial_id: str, outcome: Outcome) -> list[Decision]:
        """The trials decided because of this result (none for a strategy that decides
        everything up front)."""
        return []

    def restore(self, planned: Sequence[Recorded], outcomes: Mapping[str, Outcome]) -> None:
        """Rebuild the state of a planner that restarted, or of a resumed study, before
        `initial`: the library's recorded decisions that no search of higher precedence makes,
        in order, and what came of them (stored results)."""
        return

    @property
    def undecided(self) -> int:
        """Trials it has still to decide (as results arrive)."""
        return 0

    def waiting(self) -> list[Decision]:
        """Its decisions whose result it has not had yet (a reactive strategy's)."""
        return []

    @property
    def done(self) -> bool:
        """Everything decided, and each decision has a result (or nothing to wait for)."""
        return True


Spec = TypeVar("Spec", bound=SearchSpec)


@dataclass(frozen=True)
class SearchKind(Generic[Spec]):
    """A kind of search, as a `kinds` module registers it (`KIND`): the schema of its section
    of a library's search, its strategy, and its precedence among a library's searches (lower
    first: a point two of them could decide is the first one's). `prepare` imports what the
    strategy decides with and sets it up, once, in a process that will decide (the planner)."""

    name: str
    spec: type[Spec]
    strategy: Callable[[Spec, SearchContext], Strategy[Spec]]
    precedence: int
    prepare: Callable[[], None] | None = None

    def start(self, spec: SearchSpec, context: SearchContext) -> Strategy[Any]:
        if not isinstance(spec, self.spec):
            raise TypeError(f"{self.name}: a {type(spec).__name__} is not its section")
        return self.strategy(spec, context)
