"""Study budgets: the planner stops a study once its results have spent its budget.

A study may set `budget: {core_hours: X}` or `budget: {cost: Y}` (at the prices recorded in its
spec). The planner sees every result (its queue), counts each budgeted study's core-seconds per
pool (`tunefleet_contract.cost.spent`, as the client's ledger does), and once the budget is
reached it stops the study as a cancel does, by the planner and with a "budget spent" reason:
no adaptive search decides another trial, workers skip what is still queued (grid and random
trials are all published up front: this is how the budget applies to them), and the study ends
as "budget spent". What the workers have in hand finishes: a study overshoots by at most the
trials in hand when the budget ran out (one family per worker) and the results in flight.

The count is rebuilt from the store's results of the current revision the first time a study's
result arrives (a restarted planner, a resume: a result of a revision newer than the one
counted reads it again), then kept in memory by trial id: a redelivered result counts once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tunefleet_contract.cost import BUDGET_SPENT, PLANNER, BudgetSpec, spent
from tunefleet_contract.messages import StudyCancelled, TrialResult
from tunefleet_runtime.records import StudyRecord, TrialRecord

__all__ = ["BudgetTally", "Budgets"]

# Studies remembered (budgeted or not); the oldest are forgotten, and read again if needed.
_REMEMBERED = 10_000


@dataclass
class BudgetTally:
    """One budgeted study's results in its current revision: trial id -> core-seconds, pool."""

    budget: BudgetSpec
    revision: int
    usage: dict[str, tuple[float | None, str | None]] = field(default_factory=dict)
    stopped: bool = False

    def add(self, trial_id: str, core_s: float | None, pool: str | None) -> None:
        self.usage.setdefault(trial_id, (core_s, pool))

    def spent_text(self) -> str:
        total = spent(self.usage.values(), self.budget.prices)
        if self.budget.core_hours is not None:
            return f"{total.core_hours:.4g} of {self.budget.core_hours:g} core-hours"
        currency = self.budget.prices.currency if self.budget.prices else ""
        return f"{total.money or 0:.4g} of {self.budget.limit():g} {currency}".rstrip()

    def over(self) -> bool:
        return spent(self.usage.values(), self.budget.prices).over(self.budget)


class Budgets:
    """The planner's count of every budgeted study it has seen a result of."""

    def __init__(self) -> None:
        self._tallies: dict[str, BudgetTally | None] = {}  # None: the study has no budget

    def forget(self, study_id: str) -> None:
        """A new revision (a resume, perhaps with a new budget): count again from the store."""
        self._tallies.pop(study_id, None)

    def forget_all(self) -> None:
        """Another planner counted results meanwhile: count every study again from the store."""
        self._tallies.clear()

    def unbudgeted(self, study_id: str) -> bool:
        """Whether the study is known to have no budget (nothing of it is counted)."""
        return study_id in self._tallies and self._tallies[study_id] is None

    def current(self, result: TrialResult) -> bool:
        """Whether the study of `result` is counted, in the result's revision or a later one
        (else `load` it: a revision the store had not recorded when it was last read)."""
        if result.study_id not in self._tallies:
            return False
        tally = self._tallies[result.study_id]
        return tally is None or result.revision <= tally.revision

    def load(
        self, record: StudyRecord | None, results: list[TrialRecord] | None = None
    ) -> BudgetTally | None:
        """Start counting a study from its record and its stored results."""
        if record is None:
            return None  # not registered yet: its first results wait for that, counted then
        budget = record.spec.budget
        tally = None if budget is None else BudgetTally(budget, record.revision)
        if tally is not None:
            for r in results or []:
                tally.add(r.trial_id, r.core_s, r.pool)
            tally.stopped = record.cancelled
        self._tallies[record.study_id] = tally
        while len(self._tallies) > _REMEMBERED:
            del self._tallies[next(iter(self._tallies))]
        return tally

    def spent_by(self, result: TrialResult) -> StudyCancelled | None:
        """Count a result (of a study `load`ed before); the cancel to publish when it is the
        one that spends the study's budget (once per study)."""
        tally = self._tallies.get(result.study_id)
        if tally is None or result.revision != tally.revision:
            return None
        tally.add(result.trial_id, result.core_s, result.pool)
        if tally.stopped or not tally.over():
            return None
        tally.stopped = True
        return StudyCancelled(
            study_id=result.study_id,
            cancelled_at=time.time(),
            by=PLANNER,
            reason=f"{BUDGET_SPENT}: {tally.spent_text()}",
        )

    def stopped(self, study_id: str) -> bool:
        """Whether the study's budget is spent (as far as this planner has counted)."""
        tally = self._tallies.get(study_id)
        return tally is not None and tally.stopped
