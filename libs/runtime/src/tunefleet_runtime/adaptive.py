"""What a study's adaptive searches did, computed from its trials: the one place the CLI, live
progress and the report learn it from.

A trial carries no mark of the search that decided it; the spec says enough. A library's
adaptive trials are its trials whose parameters lie in its adaptive search's space (the fixed
parameters aside; for ASHA, the rounds parameter at one of the rungs). Grid points with other
parameters, and random draws from another space, are told apart by that; a grid point or draw
that lies in the space too (a random search over the same space as the library's TPE search)
is not, and counts as the adaptive search's. The planner knows exactly (it expands the grid and
random searches again); the client has no planner, and this costs it nothing to know.

ASHA (see `tunefleet_contract.spec.ASHASearch`): a *configuration* is a trial's parameters
without the rounds parameter; its trial at rung k has `rounds = rungs()[k]`; it was *promoted*
from rung k when it has a trial at rung k + 1.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tunefleet_contract.families import configuration
from tunefleet_contract.params import Scalar
from tunefleet_contract.spec import (
    ASHASearch,
    LibrarySearch,
    StudySpec,
    TPESearch,
    asha_rounds,
)

if TYPE_CHECKING:
    from tunefleet_runtime.records import TrialRecord

__all__ = [
    "AdaptiveSearch",
    "BestPoint",
    "Decision",
    "Ladder",
    "Rung",
    "SearchStatus",
    "SearchTally",
    "asha_rungs",
    "best_so_far",
    "highest_rung",
    "ladders",
    "library_strategy",
    "trial_search",
]

Params = Mapping[str, Scalar]


class Decision(Protocol):
    """A trial the planner decided: a `TrialSpec` (as a `trials.planned` event carries it) or a
    `PlannedTrial` (as the store keeps it)."""

    @property
    def trial_id(self) -> str: ...

    @property
    def library(self) -> str: ...

    @property
    def params(self) -> Params: ...


def _strategies(part: LibrarySearch) -> list[str]:
    keys = ["grid"] if part.grids() else []
    keys.extend(key for key, _ in part.searches())
    return keys


def library_strategy(part: LibrarySearch) -> str:
    """How a library's trials are decided, as status and the report name it: its searches
    joined by '+', e.g. "grid", "random", "tpe", "grid+asha" (fixed parameters alone are a
    one-point grid)."""
    return "+".join(_strategies(part))


def trial_search(spec: StudySpec, library: str, params: Params) -> str:
    """The search that decided a trial, as `top` shows it: "tpe", "asha 30" (ASHA, at the rung
    of 30 rounds), or the library's other searches ("grid", "random", "grid+random")."""
    adaptive = AdaptiveSearch.of(spec, library)
    if adaptive is not None and adaptive.owns(library, params):
        rung = adaptive.rung(params)
        return adaptive.key if rung is None else f"{adaptive.key} {adaptive.rungs[rung]}"
    part = spec.search.get(library)
    others = [k for k in _strategies(part) if k not in ("tpe", "asha")] if part else []
    return "+".join(others) or "-"


@dataclass(frozen=True)
class AdaptiveSearch:
    """A library's adaptive search, resolved: which trials are its, and (ASHA) their rungs."""

    library: str
    key: str  # tpe | asha
    search: TPESearch | ASHASearch
    fixed: Mapping[str, Scalar]
    rounds: str | None = None  # ASHA: the parameter the rungs set
    rungs: tuple[int, ...] = ()  # ASHA: the rounds of each rung, lowest first

    @classmethod
    def of(cls, spec: StudySpec, library: str) -> AdaptiveSearch | None:
        part = spec.search.get(library)
        if part is None or part.adaptive is None:
            return None
        if part.asha is not None:
            return cls(
                library,
                "asha",
                part.asha,
                part.fixed,
                asha_rounds(library, part.asha),
                tuple(part.asha.rungs()),
            )
        assert part.tpe is not None
        return cls(library, "tpe", part.tpe, part.fixed)

    @property
    def n_trials(self) -> int:
        return self.search.n_trials

    def rung(self, params: Params) -> int | None:
        """The rung of an ASHA trial (None: not at a rung, or not ASHA)."""
        if self.rounds is None:
            return None
        value = params.get(self.rounds)
        if isinstance(value, bool) or not isinstance(value, int) or value not in self.rungs:
            return None
        return self.rungs.index(value)

    def configuration(self, params: Params) -> dict[str, Scalar]:
        """The parameters without the rounds parameter (ASHA: the same at every rung)."""
        return {k: v for k, v in params.items() if k != self.rounds}

    def chosen(self, params: Params) -> dict[str, Scalar]:
        """What the search chose: the configuration without the fixed parameters."""
        return {k: v for k, v in self.configuration(params).items() if k not in self.fixed}

    def configuration_key(self, params: Params) -> tuple[Hashable, ...]:
        return configuration(params, self.rounds or "")

    def owns(self, library: str, params: Params) -> bool:
        """Whether this search can have decided a trial of `library` with these parameters
        (the planner's own test, `AdaptiveSearch.drew`)."""
        if library != self.library:
            return False
        if self.rounds is not None and self.rung(params) is None:
            return False
        return self.search.drew(self.configuration(params), self.fixed)


def _scored(record: TrialRecord) -> bool:
    return record.status == "done" and record.score is not None


@dataclass(frozen=True)
class BestPoint:
    """One scored trial in the order trials finished, with the best score up to it."""

    order: int  # 1 for the first trial that finished
    trial_id: str
    finished_at: float
    score: float
    best: float
    best_trial_id: str


def best_so_far(records: Iterable[TrialRecord]) -> list[BestPoint]:
    """The optimisation history: every scored trial by when it finished (trial id breaks ties),
    with the best score so far (greater is better, as scikit-learn's scorers are)."""
    scored = [(r.finished_at, r.trial_id, r.score) for r in records if r.status == "done"]
    ordered = sorted((at, tid, score) for at, tid, score in scored if score is not None)
    points: list[BestPoint] = []
    best: tuple[float, str] | None = None
    for order, (finished_at, trial_id, score) in enumerate(ordered, 1):
        if best is None or score > best[0]:
            best = (score, trial_id)
        points.append(BestPoint(order, trial_id, finished_at, score, *best))
    return points


@dataclass(frozen=True)
class Rung:
    """One ASHA rung: how many configurations it ran and scored, and how many went on."""

    index: int
    rounds: int
    decided: int  # configurations with a trial at this rung (planned or with a result)
    scored: int  # of those, with a score
    failed: int
    promoted: int  # of those, with a trial at the next rung (0 at the top rung)
    best_score: float | None
    best_trial_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rung": self.index,
            "rounds": self.rounds,
            "decided": self.decided,
            "scored": self.scored,
            "failed": self.failed,
            "promoted": self.promoted,
            "best_score": self.best_score,
            "best_trial_id": self.best_trial_id,
        }


def _at_rungs(
    asha: AdaptiveSearch, records: Iterable[TrialRecord]
) -> dict[tuple[Any, ...], dict[int, TrialRecord]]:
    """Configuration -> rung -> its result there (the library's ASHA trials only)."""
    found: dict[tuple[Any, ...], dict[int, TrialRecord]] = {}
    for record in records:
        if asha.owns(record.library, record.params):
            rung = asha.rung(record.params)
            assert rung is not None  # owns() checked
            found.setdefault(asha.configuration_key(record.params), {})[rung] = record
    return found


def asha_rungs(
    asha: AdaptiveSearch, records: Iterable[TrialRecord], planned: Iterable[Decision] = ()
) -> list[Rung]:
    """Per rung, lowest first: configurations decided, scored, failed and promoted.

    `planned`: the study's decided trials (the store's plan), so that a promotion whose trial
    has no result yet counts; without it, what the results show."""
    results = _at_rungs(asha, records)
    decided: dict[int, set[tuple[Any, ...]]] = {k: set() for k in range(len(asha.rungs))}
    for key, by_rung in results.items():
        for rung in by_rung:
            decided[rung].add(key)
    for trial in planned:
        at = asha.rung(trial.params)
        if at is not None and asha.owns(trial.library, trial.params):
            decided[at].add(asha.configuration_key(trial.params))
    rungs = []
    for index, rounds in enumerate(asha.rungs):
        here = [by_rung[index] for by_rung in results.values() if index in by_rung]
        scored = [r for r in here if _scored(r)]
        best = max(scored, key=lambda r: (r.score, r.trial_id), default=None)
        above = decided.get(index + 1, set())
        rungs.append(
            Rung(
                index=index,
                rounds=rounds,
                decided=len(decided[index]),
                scored=len(scored),
                failed=sum(1 for r in here if r.status != "done"),
                promoted=sum(1 for key in decided[index] if key in above),
                best_score=None if best is None else best.score,
                best_trial_id=None if best is None else best.trial_id,
            )
        )
    return rungs


@dataclass(frozen=True)
class Ladder:
    """One ASHA configuration's way up: its score at each rung it has a result at."""

    configuration: dict[str, Scalar]
    scores: dict[int, float | None]  # rung -> score (None: the trial failed)
    trial_ids: dict[int, str]  # rung -> trial id

    @property
    def top(self) -> int:
        """The highest rung it has a result at."""
        return max(self.scores)


def ladders(
    asha: AdaptiveSearch, records: Iterable[TrialRecord], *, min_rung: int | None = None
) -> list[Ladder]:
    """The configurations that reached `min_rung` (default: the top rung), best score at
    their highest rung first."""
    floor = len(asha.rungs) - 1 if min_rung is None else min_rung
    found = []
    for by_rung in _at_rungs(asha, records).values():
        if max(by_rung) < floor:
            continue
        first = next(iter(by_rung.values()))
        found.append(
            Ladder(
                configuration=asha.configuration(first.params),
                scores={k: by_rung[k].score for k in sorted(by_rung)},
                trial_ids={k: by_rung[k].trial_id for k in sorted(by_rung)},
            )
        )
    return sorted(found, key=_ladder_order)


def _ladder_order(ladder: Ladder) -> tuple[int, float]:
    score = ladder.scores[ladder.top]
    return (-ladder.top, math.inf if score is None else -score)


def highest_rung(asha: AdaptiveSearch, records: Iterable[TrialRecord]) -> list[TrialRecord]:
    """Each configuration once, by its scored trial at the highest rung it has one: what its
    parameters achieved with the most rounds it was given (for parameter importance)."""
    found = []
    for by_rung in _at_rungs(asha, records).values():
        scored = [by_rung[k] for k in sorted(by_rung) if _scored(by_rung[k])]
        if scored:
            found.append(scored[-1])
    return sorted(found, key=lambda r: r.trial_id)


@dataclass(frozen=True)
class SearchStatus:
    """One library's search, as `status` shows it."""

    library: str
    strategy: str  # library_strategy(): grid, random, tpe, grid+asha, ...
    finished: int  # the library's trials with a result
    best_score: float | None  # the library's best so far
    best_trial_id: str | None
    adaptive: str | None = None  # tpe | asha | None
    n_trials: int | None = None  # the adaptive search's trials in all
    decided: int = 0  # of those, decided so far (the planner's plan)
    adaptive_finished: int = 0  # of those, with a result
    rungs: tuple[int, ...] = ()  # ASHA: the rounds of each rung, lowest first
    rung_finished: tuple[int, ...] = ()  # ASHA: results per rung

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "library": self.library,
            "strategy": self.strategy,
            "finished": self.finished,
            "best_score": self.best_score,
            "best_trial_id": self.best_trial_id,
        }
        if self.adaptive is not None:
            found.update(
                adaptive=self.adaptive,
                n_trials=self.n_trials,
                decided=self.decided,
                adaptive_finished=self.adaptive_finished,
            )
        if self.rungs:
            found["rungs"] = list(self.rungs)
            found["rung_finished"] = list(self.rung_finished)
        return found


@dataclass
class _Library:
    strategy: str
    adaptive: AdaptiveSearch | None
    finished: int = 0
    best: tuple[float, str] | None = None
    decided: set[str] = field(default_factory=set)
    adaptive_finished: int = 0
    rung_finished: list[int] = field(default_factory=list)


class SearchTally:
    """Per library: results, the best so far and, for an adaptive search, its trials decided
    and finished; fed one result or planned trial at a time (each trial counted once)."""

    def __init__(self, spec: StudySpec) -> None:
        self._libraries: dict[str, _Library] = {}
        for library, part in spec.search.items():
            adaptive = AdaptiveSearch.of(spec, library)
            self._libraries[library] = _Library(
                library_strategy(part),
                adaptive,
                rung_finished=[0] * len(adaptive.rungs) if adaptive else [],
            )
        self._results: set[str] = set()

    def planned(self, trial_id: str, library: str, params: Params) -> None:
        part = self._libraries.get(library)
        if part is not None and part.adaptive is not None and part.adaptive.owns(library, params):
            part.decided.add(trial_id)

    def result(
        self, trial_id: str, library: str, params: Params, status: str, score: float | None
    ) -> None:
        part = self._libraries.get(library)
        if part is None or trial_id in self._results:
            return
        self._results.add(trial_id)
        part.finished += 1
        if status == "done" and score is not None and (part.best is None or score > part.best[0]):
            part.best = (score, trial_id)
        adaptive = part.adaptive
        if adaptive is not None and adaptive.owns(library, params):
            part.decided.add(trial_id)  # a result proves the decision (its plan may lag)
            part.adaptive_finished += 1
            rung = adaptive.rung(params)
            if rung is not None:
                part.rung_finished[rung] += 1

    def status(self) -> list[SearchStatus]:
        return [
            SearchStatus(
                library=library,
                strategy=part.strategy,
                finished=part.finished,
                best_score=part.best[0] if part.best else None,
                best_trial_id=part.best[1] if part.best else None,
                adaptive=part.adaptive.key if part.adaptive else None,
                n_trials=part.adaptive.n_trials if part.adaptive else None,
                decided=len(part.decided),
                adaptive_finished=part.adaptive_finished,
                rungs=part.adaptive.rungs if part.adaptive else (),
                rung_finished=tuple(part.rung_finished),
            )
            for library, part in self._libraries.items()
        ]
