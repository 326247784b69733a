"""An adaptive search's history as the report and the CLI show it: the best score so far in the
order results came, and for a search with rungs (ASHA) each rung's counts and each
configuration's way up. Which trials are the search's, and at which rung, is its
`views.SearchView`'s (the plan's record).

ASHA: a *configuration* is a trial's parameters without the rounds parameter; its trial at rung
k has `rounds = rung_rounds[k]`; it was *promoted* from rung k when it has a trial at k + 1.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from tunefleet_contract.rules import Scalar
from tunefleet_contract.search.strategy import Recorded
from tunefleet_contract.search.views import Finished, SearchView, scored

__all__ = [
    "BestPoint",
    "Ladder",
    "Rung",
    "asha_rungs",
    "best_so_far",
    "highest_rung",
    "ladders",
]


@dataclass(frozen=True)
class BestPoint:
    """One scored trial in the order trials finished, with the best score up to it."""

    order: int  # 1 for the first trial that finished
    trial_id: str
    finished_at: float
    score: float
    best: float
    best_trial_id: str


def best_so_far(records: Iterable[Finished]) -> list[BestPoint]:
    """The optimisation history: every scored trial by when it finished (trial id breaks ties),
    with the best score so far (greater is better, as scikit-learn's scorers are)."""
    ordered = sorted(
        (r.finished_at, r.trial_id, score)
        for r in records
        if (score := scored(r.status, r.score)) is not None
    )
    points: list[BestPoint] = []
    best: tuple[float, str] | None = None
    for order, (finished_at, trial_id, score) in enumerate(ordered, 1):
        if best is None or score > best[0]:
            best = (score, trial_id)
        points.append(BestPoint(order, trial_id, finished_at, score, *best))
    return points


@dataclass(frozen=True)
class Rung:
    """One rung: how many configurations it ran and scored, and how many went on."""

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


def _at_rungs(view: SearchView, records: Iterable[Finished]) -> dict[Hashable, dict[int, Finished]]:
    """Configuration -> rung -> its result there (the search's trials at a rung only)."""
    found: dict[Hashable, dict[int, Finished]] = {}
    for record in records:
        if view.owns(record.library, record.params, record.trial_id):
            rung = view.rung(record.params, record.trial_id)
            if rung is not None:
                found.setdefault(view.configuration_key(record.params), {})[rung] = record
    return found


def asha_rungs(
    view: SearchView, records: Iterable[Finished], planned: Iterable[Recorded] = ()
) -> list[Rung]:
    """Per rung, lowest first: configurations decided, scored, failed and promoted.

    `planned`: the study's decided trials (the store's plan), so that a promotion whose trial
    has no result yet counts; without it, what the results show."""
    results = _at_rungs(view, records)
    decided: dict[int, set[Hashable]] = {k: set() for k in range(len(view.rungs))}
    for key, by_rung in results.items():
        for rung in by_rung:
            decided[rung].add(key)
    for trial in planned:
        search, at = (
            (trial.search, trial.rung)
            if trial.search is not None
            else view.decisions.of(trial.trial_id, trial.library, trial.params)
        )
        if trial.library == view.library and search == view.key and at in decided:
            decided[at].add(view.configuration_key(trial.params))
    rungs = []
    for index, rounds in enumerate(view.rungs):
        here = [by_rung[index] for by_rung in results.values() if index in by_rung]
        ranked = [(s, r.trial_id) for r in here if (s := scored(r.status, r.score)) is not None]
        best = max(ranked, default=None)
        above = decided.get(index + 1, set())
        rungs.append(
            Rung(
                index=index,
                rounds=rounds,
                decided=len(decided[index]),
                scored=len(ranked),
                failed=sum(1 for r in here if r.status != "done"),
                promoted=sum(1 for key in decided[index] if key in above),
                best_score=None if best is None else best[0],
                best_trial_id=None if best is None else best[1],
            )
        )
    return rungs


@dataclass(frozen=True)
class Ladder:
    """One configuration's way up: its score at each rung it has a result at."""

    configuration: dict[str, Scalar]
    scores: dict[int, float | None]  # rung -> score (None: the trial failed)
    trial_ids: dict[int, str]  # rung -> trial id

    @property
    def top(self) -> int:
        """The highest rung it has a result at."""
        return max(self.scores)


def ladders(
    view: SearchView, records: Iterable[Finished], *, min_rung: int | None = None
) -> list[Ladder]:
    """The configurations that reached `min_rung` (default: the top rung), best score at
    their highest rung first."""
    floor = len(view.rungs) - 1 if min_rung is None else min_rung
    found = []
    for by_rung in _at_rungs(view, records).values():
        if max(by_rung) < floor:
            continue
        first = next(iter(by_rung.values()))
        found.append(
            Ladder(
                configuration=view.configuration(first.params),
                scores={k: by_rung[k].score for k in sorted(by_rung)},
                trial_ids={k: by_rung[k].trial_id for k in sorted(by_rung)},
            )
        )
    return sorted(found, key=_ladder_order)


def _ladder_order(ladder: Ladder) -> tuple[int, float]:
    score = ladder.scores[ladder.top]
    return (-ladder.top, math.inf if score is None else -score)


def highest_rung(view: SearchView, records: Iterable[Finished]) -> list[Finished]:
    """Each configuration once, by its scored trial at the highest rung it has one: what its
    parameters achieved with the most rounds it was given (for parameter importance)."""
    found = []
    for by_rung in _at_rungs(view, records).values():
        ranked = [
            by_rung[k]
            for k in sorted(by_rung)
            if scored(by_rung[k].status, by_rung[k].score) is not None
        ]
        if ranked:
            found.append(ranked[-1])
    return sorted(found, key=lambda r: r.trial_id)
