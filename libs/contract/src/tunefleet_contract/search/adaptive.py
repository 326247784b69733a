"""What every adaptive strategy shares: `n_trials` decided one after another as results arrive,
never more than `max_in_flight` of them without a result.

The state is only what it decided, in order, and the outcome of each (a score, or None for a
failure); it is rebuilt from the store (`restore`) after a restart or for a resume, and every
decision is a function of that state and the seed. Deciding is "top up": after any result (a
new one or one seen before), decide until `n_trials` are decided or `max_in_flight` are
without a result. A result delivered twice therefore decides nothing twice.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from typing import ClassVar, TypeVar

from tunefleet_contract.rules import Scalar
from tunefleet_contract.search.space import AdaptiveSpec, checked, sample_space
from tunefleet_contract.search.strategy import (
    Decision,
    Outcome,
    Recorded,
    SearchContext,
    Strategy,
)

__all__ = ["AdaptiveStrategy"]

# Draws per decision before a search gives up finding a point it has not decided yet.
_DRAWS = 5000

A = TypeVar("A", bound=AdaptiveSpec)


class AdaptiveStrategy(Strategy[A]):
    """Base of the adaptive strategies: a kind decides one trial at a time (`_next`) from what
    was decided and what came of it (`decided`, `outcomes`)."""

    reactive: ClassVar[bool] = True

    def __init__(self, spec: A, context: SearchContext) -> None:
        super().__init__(spec, context)
        self.seed = spec.seed_or(context.seed)
        self.decided: list[Decision] = []
        self.outcomes: dict[str, Outcome] = {}
        self._ids: set[str] = set()

    @property
    def key(self) -> str:
        return self.spec.key

    # -- the Strategy protocol ---------------------------------------------------------------

    def initial(self) -> Iterator[Decision]:
        """What it decided before (restored), then what it decides now: up to `max_in_flight`."""
        yield from list(self.decided)
        yield from self.top_up()

    def react(self, trial_id: str, outcome: Outcome) -> list[Decision]:
        if trial_id in self._ids and trial_id not in self.outcomes:
            self.outcomes[trial_id] = outcome
        return self.top_up()

    def restore(self, planned: Sequence[Recorded], outcomes: Mapping[str, Outcome]) -> None:
        """Decisions this search would no longer make (a fixed spec changed its space) are left
        out, and so is any beyond `n_trials`."""
        for trial in planned:
            if len(self.decided) == self.spec.n_trials:
                break
            if self._known(trial.trial_id) or not self._accepts(trial.params):
                continue
            params = dict(trial.params)
            self._add(Decision(trial.trial_id, trial.library, params, self.key, self._rung(params)))
            if trial.trial_id in outcomes:
                self.outcomes[trial.trial_id] = outcomes[trial.trial_id]

    @property
    def in_flight(self) -> int:
        return len(self.decided) - sum(1 for t in self.decided if t.trial_id in self.outcomes)

    @property
    def undecided(self) -> int:
        return self.spec.n_trials - len(self.decided)

    def waiting(self) -> list[Decision]:
        return [t for t in self.decided if t.trial_id not in self.outcomes]

    @property
    def done(self) -> bool:
        """Every trial decided, and each has a result."""
        return len(self.decided) == self.spec.n_trials and self.in_flight == 0

    # -- deciding ----------------------------------------------------------------------------

    def top_up(self) -> list[Decision]:
        new: list[Decision] = []
        while len(self.decided) < self.spec.n_trials and self.in_flight < self.spec.max_in_flight:
            trial = self._next()
            if trial is None:
                break  # nothing new left to try in this space
            self._add(trial)
            new.append(trial)
        return new

    def _add(self, trial: Decision) -> None:
        self.decided.append(trial)
        self._ids.add(trial.trial_id)

    @abstractmethod
    def _next(self) -> Decision | None:
        """The next trial to decide, or None where the space has nothing new."""

    def _accepts(self, params: Mapping[str, Scalar]) -> bool:
        """Whether this search could have decided a trial of these parameters."""
        return self.spec.owns(self.context.library, params, self.context.fixed)

    def _rung(self, params: Mapping[str, Scalar]) -> int | None:
        return self.spec.rung(self.context.library, params)

    def trial(self, params: dict[str, Scalar]) -> Decision | None:
        """The trial of these parameters, or None where the study has it already."""
        tid = self.context.trial_id(checked(self.context.library, self.key, params))
        if self._known(tid):
            return None
        return Decision(tid, self.context.library, params, self.key, self._rung(params))

    def _known(self, trial_id: str) -> bool:
        return trial_id in self._ids or trial_id in self.context.taken

    def draw(self, extra: Mapping[str, Scalar] | None = None) -> Decision | None:
        """The first point of this search's seeded stream that the study does not have (with
        `extra` parameters set), or None when the space seems exhausted."""
        stream = sample_space(
            self.spec, self.context.fixed, self.seed, self.context.library, self.key
        )
        # The budget grows with what the library has decided (the points to skip).
        known = len(self.context.taken) + sum(1 for t in self._ids if t not in self.context.taken)
        for point in islice(stream, _DRAWS + known):
            found = self.trial({**point, **(extra or {})})
            if found is not None:
                return found
        return None
