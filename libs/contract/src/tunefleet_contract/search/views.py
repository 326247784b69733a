"""What the read side shows of a study's searches: which search decided each trial, and each
library's tally (an adaptive search's history, rungs and ladders are `search.history`). The
CLI, live progress and the report learn it here, from the study's plan.

Which search decided a trial is the plan's record (`Recorded.search`, and `rung` for a search
with rungs): the planner wrote it as it decided. Plans stored before decisions named their
search say nothing; for their trials, and for a live watcher's result whose decision it has not
read yet, it is inferred from the spec as it always was: a library's adaptive trials are its
trials whose parameters lie in its adaptive search's space (for ASHA, with the rounds at one of
the rungs), the rest are its other searches' ("grid+random"). That inference cannot tell a grid
point or a random draw that also lies in the adaptive space from the adaptive search's own; the
record can.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tunefleet_contract.rules import Scalar
from tunefleet_contract.search.grid import GRID
from tunefleet_contract.search.ids import configuration
from tunefleet_contract.search.plan import LibraryPart
from tunefleet_contract.search.space import AdaptiveSpec
from tunefleet_contract.search.strategy import Recorded

__all__ = [
    "Decisions",
    "Finished",
    "SearchStatus",
    "SearchTally",
    "SearchView",
    "library_strategy",
    "scored",
    "trial_search",
]

Params = Mapping[str, Scalar]
# A trial's search and, for a search with rungs, its rung.
Attribution = tuple[str, int | None]


class Searched(Protocol):
    """A study spec as far as its searches go (`spec.StudySpec`)."""

    @property
    def search(self) -> Mapping[str, LibraryPart]: ...


class Finished(Protocol):
    """A result (`TrialRecord`, `TrialResult`)."""

    @property
    def trial_id(self) -> str: ...

    @property
    def library(self) -> str: ...

    @property
    def params(self) -> Params: ...

    @property
    def status(self) -> str: ...

    @property
    def score(self) -> float | None: ...

    @property
    def finished_at(self) -> float: ...


def scored(status: str, score: float | None) -> float | None:
    """The score a result ranks by: its score when it is done and scored, else None (the one
    definition of a scored result)."""
    return score if status == "done" else None


def _adaptive(part: LibraryPart) -> AdaptiveSpec | None:
    return next((s for s in part.searches() if isinstance(s, AdaptiveSpec)), None)


def _keys(part: LibraryPart) -> list[str]:
    return ([GRID] if part.grids() else []) + [search.key for search in part.searches()]


def library_strategy(part: LibraryPart) -> str:
    """How a library's trials are decided, as status and the report name it: its searches
    joined by '+', e.g. "grid", "random", "tpe", "grid+asha" (fixed parameters alone are a
    one-point grid)."""
    return "+".join(_keys(part))


class Decisions:
    """Which search decided each trial of a study: the plan's record where it has one, else
    inferred from the spec (see the module's docstring)."""

    def __init__(self, spec: Searched, plan: Iterable[Recorded] = ()) -> None:
        self._spec = spec
        self._recorded: dict[str, Attribution] = {}
        for trial in plan:
            self.add(trial)

    def add(self, trial: Recorded) -> None:
        """Take a decision from the plan (one that names no search says nothing)."""
        self.record(trial.trial_id, trial.search, trial.rung)

    def record(self, trial_id: str, search: str | None, rung: int | None) -> None:
        if search is not None:
            self._recorded[trial_id] = (search, rung)

    def of(self, trial_id: str | None, library: str, params: Params) -> Attribution:
        found = self._recorded.get(trial_id) if trial_id is not None else None
        return found if found is not None else self.inferred(library, params)

    def inferred(self, library: str, params: Params) -> Attribution:
        part = self._spec.search.get(library)
        if part is None:
            return "-", None
        adaptive = _adaptive(part)
        if adaptive is not None and adaptive.owns(library, params, part.fixed):
            return adaptive.key, adaptive.rung(library, params)
        others = [key for key in _keys(part) if adaptive is None or key != adaptive.key]
        return "+".join(others) or "-", None


def trial_search(
    spec: Searched, decisions: Decisions, library: str, params: Params, trial_id: str
) -> str:
    """The search that decided a trial, as `top` shows it: "tpe", "asha 30" (ASHA, at the rung
    of 30 rounds), "grid", "random" (a plan stored before decisions named their search shows
    a library's other searches together: "grid+random")."""
    search, rung = decisions.of(trial_id, library, params)
    part = spec.search.get(library)
    kind = next((s for s in part.searches() if s.key == search), None) if part else None
    rounds = kind.rung_rounds(library) if kind is not None else ()
    return search if rung is None or rung >= len(rounds) else f"{search} {rounds[rung]}"


@dataclass(frozen=True)
class SearchView:
    """A library's adaptive search as the read side sees it: which trials are its, and (with
    rungs) where."""

    library: str
    spec: AdaptiveSpec
    fixed: Params
    decisions: Decisions

    @classmethod
    def of(
        cls, spec: Searched, library: str, decisions: Decisions | None = None
    ) -> SearchView | None:
        part = spec.search.get(library)
        adaptive = _adaptive(part) if part is not None else None
        if part is None or adaptive is None:
            return None
        return cls(library, adaptive, part.fixed, decisions or Decisions(spec))

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def n_trials(self) -> int:
        return self.spec.n_trials

    @property
    def rungs(self) -> tuple[int, ...]:
        """The rounds of each rung, lowest first (none without rungs)."""
        return self.spec.rung_rounds(self.library)

    @property
    def rounds(self) -> str | None:
        """The parameter the rungs set (None: no rungs)."""
        return self.spec.rounds_param(self.library)

    def owns(self, library: str, params: Params, trial_id: str | None = None) -> bool:
        """Whether this search decided the trial (the plan's record of `trial_id`, or as far
        as the parameters tell)."""
        if library != self.library:
            return False
        return self.decisions.of(trial_id, library, params)[0] == self.key

    def rung(self, params: Params, trial_id: str | None = None) -> int | None:
        """The rung of one of its trials (None: not at a rung, or no rungs)."""
        search, rung = self.decisions.of(trial_id, self.library, params)
        return rung if search == self.key else None

    def configuration(self, params: Params) -> dict[str, Scalar]:
        """The parameters without the rounds parameter (the same at every rung)."""
        return {k: v for k, v in params.items() if k != self.rounds}

    def chosen(self, params: Params) -> dict[str, Scalar]:
        """What the search chose: the configuration without the fixed parameters."""
        return {k: v for k, v in self.configuration(params).items() if k not in self.fixed}

    def configuration_key(self, params: Params) -> tuple[Hashable, ...]:
        return configuration(params, self.rounds or "")

    def mine(self, records: Iterable[Finished]) -> list[Finished]:
        return [r for r in records if self.owns(r.library, r.params, r.trial_id)]


@dataclass(frozen=True)
class SearchStatus:
    """One library's search, as `status` shows it."""

    library: str
    strategy: str  # library_strategy(): grid, random, tpe, grid+asha, ...
    finished: int  # the library's trials with a result
    best_score: float | None  # the library's best so far
    best_trial_id: str | None
    adaptive: str | None = None  # the adaptive search's name (tpe, asha) or None
    n_trials: int | None = None  # the adaptive search's trials in all
    decided: int = 0  # of those, decided so far (the planner's plan)
    adaptive_finished: int = 0  # of those, with a result
    rungs: tuple[int, ...] = ()  # with rungs: the rounds of each rung, lowest first
    rung_finished: tuple[int, ...] = ()  # with rungs: results per rung

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
    view: SearchView | None
    finished: int = 0
    best: tuple[float, str] | None = None
    decided: set[str] = field(default_factory=set)
    adaptive_finished: int = 0
    rung_finished: list[int] = field(default_factory=list)


class SearchTally:
    """Per library: results, the best so far and, for an adaptive search, its trials decided
    and finished; fed one result or planned trial at a time (each trial counted once). A
    result counted before its decision was read (a live watcher) is counted again by the
    decision's record when that arrives."""

    def __init__(self, spec: Searched) -> None:
        self._decisions = Decisions(spec)
        self._libraries: dict[str, _Library] = {}
        for library, part in spec.search.items():
            view = SearchView.of(spec, library, self._decisions)
            self._libraries[library] = _Library(
                library_strategy(part),
                view,
                rung_finished=[0] * len(view.rungs) if view else [],
            )
        # Results counted, and the attribution each was counted under.
        self._counted: dict[str, tuple[str, Attribution]] = {}

    def planned(
        self,
        trial_id: str,
        library: str,
        params: Params,
        search: str | None = None,
        rung: int | None = None,
    ) -> None:
        """A decision of the plan (`search`: its record; None in older plans)."""
        self._decisions.record(trial_id, search, rung)
        attribution = self._decisions.of(trial_id, library, params)
        part = self._libraries.get(library)
        if part is not None and part.view is not None and attribution[0] == part.view.key:
            part.decided.add(trial_id)
        counted = self._counted.get(trial_id)
        if counted is not None and counted[1] != attribution:
            # Its result was counted by inference before the plan said otherwise.
            self._apply(counted[0], trial_id, counted[1], -1)
            self._apply(counted[0], trial_id, attribution, 1)
            self._counted[trial_id] = (counted[0], attribution)

    def result(
        self, trial_id: str, library: str, params: Params, status: str, score: float | None
    ) -> None:
        part = self._libraries.get(library)
        if part is None or trial_id in self._counted:
            return
        part.finished += 1
        value = scored(status, score)
        if value is not None and (part.best is None or value > part.best[0]):
            part.best = (value, trial_id)
        attribution = self._decisions.of(trial_id, library, params)
        self._counted[trial_id] = (library, attribution)
        self._apply(library, trial_id, attribution, 1)

    def _apply(self, library: str, trial_id: str, attribution: Attribution, step: int) -> None:
        """Count (+1) or uncount (-1) a result of the library's adaptive search."""
        part = self._libraries[library]
        search, rung = attribution
        if part.view is None or search != part.view.key:
            return
        if step > 0:
            part.decided.add(trial_id)  # a result proves the decision (its plan may lag)
        else:
            part.decided.discard(trial_id)
        part.adaptive_finished += step
        if rung is not None and rung < len(part.rung_finished):
            part.rung_finished[rung] += step

    def status(self) -> list[SearchStatus]:
        return [
            SearchStatus(
                library=library,
                strategy=part.strategy,
                finished=part.finished,
                best_score=part.best[0] if part.best else None,
                best_trial_id=part.best[1] if part.best else None,
                adaptive=part.view.key if part.view else None,
                n_trials=part.view.n_trials if part.view else None,
                decided=len(part.decided),
                adaptive_finished=part.adaptive_finished,
                rungs=part.view.rungs if part.view else (),
                rung_finished=tuple(part.rung_finished),
            )
            for library, part in self._libraries.items()
        ]
