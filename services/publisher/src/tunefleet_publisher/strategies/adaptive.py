"""What every adaptive search shares: `n_trials` decided one after another as results arrive,
never more than `max_in_flight` of them without a result.

The state is only what it decided, in order, and the outcome of each (a score, or None for a
failure); it is rebuilt from the store (`restore`) after a restart or for a resume, and every
decision is a function of that state and the seed. Deciding is "top up": after any result (a
new one or one seen before), decide until `n_trials` are decided or `max_in_flight` are
without a result. A result delivered twice therefore decides nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import islice

from tunefleet_contract import spec as schema
from tunefleet_contract.messages import TrialResult, TrialSpec
from tunefleet_contract.params import Scalar

from tunefleet_publisher.strategies.random_search import RandomSearch
from tunefleet_publisher.trials import sample_space, trial_id

__all__ = ["AdaptiveStrategy", "Outcome", "outcome_of"]

# A finished trial's score (greater is better), or None: it failed or scored nothing.
Outcome = float | None
# Draws per decision before a search gives up finding a point it has not decided yet.
_DRAWS = 5000


def outcome_of(status: str, score: float | None) -> Outcome:
    return score if status == "done" else None


class AdaptiveStrategy(RandomSearch):
    """Base of the adaptive strategies: a search over a space, like a random search, whose
    trials subclasses decide one at a time (`_next`) as results arrive."""

    reactive = True
    kind = "adaptive"

    def __init__(
        self,
        study_id: str,
        scoring: str,
        library: str,
        part: schema.LibrarySearch,
        search: schema.AdaptiveSearch,
        spec: schema.StudySpec,
        seen: set[str],
    ) -> None:
        # `seen`: every trial id of the study decided so far, by any strategy: a point another
        # search (the library's grid) already has is one trial, not a new decision.
        super().__init__(study_id, scoring, library, part, search, spec, seen)
        self.adaptive: schema.AdaptiveSearch = search
        self.decided: list[TrialSpec] = []
        self.outcomes: dict[str, Outcome] = {}

    # -- the SearchStrategy protocol ---------------------------------------------------------

    def initial(self) -> Iterator[TrialSpec]:
        """What it decided before (restored), then what it decides now: up to `max_in_flight`."""
        yield from list(self.decided)
        yield from self.top_up()

    def react(self, result: TrialResult) -> list[TrialSpec]:
        if result.trial_id in self._ids and result.trial_id not in self.outcomes:
            self.outcomes[result.trial_id] = outcome_of(result.status, result.score)
        return self.top_up()

    def restore(self, planned: Sequence[TrialSpec], outcomes: Mapping[str, Outcome]) -> None:
        """`planned`: the library's stored decisions not made by its grid or random search, in
        order; those this search would no longer make (a fixed spec changed its space) are
        left out, and so is any beyond `n_trials`."""
        for trial in planned:
            if len(self.decided) == self.search.n_trials:
                break
            if trial.trial_id in self.seen or not self._accepts(trial.params):
                continue
            self._add(trial)
            if trial.trial_id in outcomes:
                self.outcomes[trial.trial_id] = outcomes[trial.trial_id]

    # -- deciding ----------------------------------------------------------------------------

    @property
    def _ids(self) -> set[str]:
        return {t.trial_id for t in self.decided}

    @property
    def in_flight(self) -> int:
        return len(self.decided) - sum(1 for t in self.decided if t.trial_id in self.outcomes)

    @property
    def done(self) -> bool:
        """Every trial decided, and each has a result."""
        return len(self.decided) == self.search.n_trials and self.in_flight == 0

    def top_up(self) -> list[TrialSpec]:
        new: list[TrialSpec] = []
        while (
            len(self.decided) < self.search.n_trials
            and self.in_flight < self.adaptive.max_in_flight
        ):
            trial = self._next()
            if trial is None:
                break  # nothing new left to try in this space
            self._add(trial)
            new.append(trial)
        return new

    def _add(self, trial: TrialSpec) -> None:
        self.decided.append(trial)
        self.seen.add(trial.trial_id)

    def _next(self) -> TrialSpec | None:
        raise NotImplementedError

    def _accepts(self, params: Mapping[str, Scalar]) -> bool:
        """Whether this search could have decided a trial of these parameters."""
        return self.search.drew(params, self.part.fixed)

    def trial(self, params: dict[str, Scalar]) -> TrialSpec | None:
        """The trial of these parameters, or None where the study has it already."""
        self._checked(params)
        tid = trial_id(self.study_id, self.library, params, self.scoring)
        if tid in self.seen:
            return None
        return TrialSpec(trial_id=tid, library=self.library, params=params)

    def draw(self, extra: Mapping[str, Scalar] | None = None) -> TrialSpec | None:
        """The first point of this search's seeded stream that the study does not have (with
        `extra` parameters set), or None when the space seems exhausted."""
        stream = sample_space(self.search, self.part.fixed, self.seed, self.library, self.kind)
        for point in islice(stream, _DRAWS + len(self.seen)):
            found = self.trial({**point, **(extra or {})})
            if found is not None:
                return found
        return None
