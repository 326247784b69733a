"""How the planner decides a study's trials: one `SearchStrategy` per part of the search.

A strategy gives an initial batch of trials, and may react to each result with more
(`reactive`): grid and random search decide everything up front and react to nothing; an
adaptive one (TPE through Optuna's ask/tell, successive halving) decides as results arrive.
Each trial's id is deterministic (`tunefleet_publisher.trials.trial_id`), so deciding the same
trial twice, after a restart or a redelivery, is deciding it once.

A new strategy is one new module in this package (and its section of the spec's schema in
`tunefleet_contract.spec`), chosen in `strategies_for` below.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from tunefleet_contract.messages import TrialResult, TrialSpec
from tunefleet_contract.spec import StudySpec
from tunefleet_runtime.validation import scoring_key

from tunefleet_publisher.strategies.adaptive import AdaptiveStrategy, Outcome, outcome_of
from tunefleet_publisher.strategies.asha import ASHASearch
from tunefleet_publisher.strategies.grid_search import GridSearch
from tunefleet_publisher.strategies.random_search import RandomSearch
from tunefleet_publisher.strategies.tpe import TPESearch

__all__ = [
    "AdaptiveStrategy",
    "Outcome",
    "SearchStrategy",
    "expand",
    "outcome_of",
    "strategies_for",
]


class SearchStrategy(Protocol):
    """One part of a study's search, as the planner drives it."""

    library: str

    @property
    def reactive(self) -> bool:
        """Whether results decide further trials: the planner then feeds it the study's
        `trial.result` events (and restores it from the store after a restart)."""
        ...

    def initial(self) -> Iterator[TrialSpec]:
        """The trials decided before any result, lazily."""
        ...

    def react(self, result: TrialResult) -> list[TrialSpec]:
        """The trials decided because of this result (none for a non-reactive strategy)."""
        ...

    def restore(self, planned: Sequence[TrialSpec], outcomes: Mapping[str, Outcome]) -> None:
        """Rebuild the state of a planner that restarted, or of a resumed study, before
        `initial`: what it had decided (the store's planned trials of its library that no
        non-reactive strategy decides, in order) and what came of them (stored results)."""
        ...


def strategies_for(spec: StudySpec, study_id: str) -> list[SearchStrategy]:
    """Per library, in the spec's order: its grid, then its random search, then its adaptive
    search; each skips points an earlier one already has (they are one trial)."""
    scoring = scoring_key(spec)
    found: list[SearchStrategy] = []
    for library, part in spec.search.items():
        seen: set[str] = set()
        found.append(GridSearch(study_id, scoring, library, part, seen))
        if part.random is not None:
            found.append(RandomSearch(study_id, scoring, library, part, part.random, spec, seen))
        if part.tpe is not None:
            found.append(TPESearch(study_id, scoring, library, part, part.tpe, spec, seen))
        if part.asha is not None:
            found.append(ASHASearch(study_id, scoring, library, part, part.asha, spec, seen))
    return found


def expand(spec: StudySpec, study_id: str) -> Iterator[TrialSpec]:
    """Every trial a study decides before any result, lazily, in planning order."""
    for strategy in strategies_for(spec, study_id):
        yield from strategy.initial()
