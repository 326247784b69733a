"""The cost ledger of a study: what it spent per library and per trial, what preemptions
wasted, and what each unit of score improvement cost (docs/usage.md, Cost).

Everything is computed from the stored results (each with its core-seconds and its node's
pool) when read: money is core-seconds times a price table, the study's own (recorded with a
cost budget, the prices its budget was counted at) or else the reader's `TUNEFLEET_PRICES`;
without either, the ledger is in core-hours only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunefleet_contract.cost import BudgetSpec, PriceTable, Spent, spent
from tunefleet_contract.search.views import scored
from tunefleet_runtime.records import (
    FoldRecord,
    RoundRecord,
    StudyRecord,
    TrialRecord,
    TrialStart,
)

__all__ = [
    "Improvement",
    "Ledger",
    "Line",
    "Waste",
    "improvement",
    "ledger",
    "money",
    "number",
    "preemption_waste",
    "prices_for",
    "wasted_core_seconds",
    "wasted_seconds",
]


def number(value: float) -> str:
    """Four decimals, or four significant digits below 1 (a small study costs fractions of
    a cent, which should not print as 0.0000)."""
    return f"{value:.4f}" if abs(value) >= 1 or value == 0 else f"{value:.4g}"


def money(value: float | None, currency: str | None) -> str:
    """An amount with its currency; `-` where there is no price table."""
    return "-" if value is None or currency is None else f"{number(value)} {currency}"


def prices_for(record: StudyRecord | None, settings: PriceTable | None) -> PriceTable | None:
    """The prices a study's money is counted at: its budget's, else the reader's."""
    budget = record.spec.budget if record is not None else None
    if budget is not None and budget.prices is not None:
        return budget.prices
    return settings


@dataclass(frozen=True)
class Line:
    """What a part of the study (all of it, a library, a trial, a pool) cost."""

    name: str
    trials: int
    core_s: float
    money: float | None

    @property
    def core_hours(self) -> float:
        return self.core_s / 3600

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trials": self.trials,
            "core_s": self.core_s,
            "core_hours": self.core_hours,
            "cost": self.money,
        }


def _line(name: str, results: Sequence[TrialRecord], prices: PriceTable | None) -> Line:
    total = spent(((r.core_s, r.pool) for r in results), prices)
    return Line(name, len(results), total.core_s, total.money)


@dataclass(frozen=True)
class Waste:
    """What preemptions (and crashes, restarts: any delivery beyond a trial's first) cost.

    `core_s` is what the abandoned deliveries ran less the folds they checkpointed for a later
    one (`wasted_core_seconds`). The store knows when a delivery began, not when a preempted one
    stopped: the ledger's figure estimates the end (`estimated`; see `wasted_seconds`); it is
    exact where the stop times are known (a drill's record of when it stopped each worker).
    Without per-trial figures, the bound is each extra delivery at the
    finished attempt's cost."""

    redeliveries: int
    trials: int  # trials delivered more than once
    core_s: float
    money: float | None
    exact: bool
    estimated: bool = False  # per trial from the store, the ends of abandoned deliveries bounded

    @property
    def qualifier(self) -> str:
        """How to read `core_s`: exact (""), an estimate ("about "), a bound ("at most ")."""
        return "" if self.exact else "about " if self.estimated else "at most "

    def as_dict(self) -> dict[str, Any]:
        return {
            "redeliveries": self.redeliveries,
            "trials": self.trials,
            "core_s": self.core_s,
            "cost": self.money,
            "exact": self.exact,
            "estimated": self.estimated,
        }


def preemption_waste(
    results: Iterable[TrialRecord],
    prices: PriceTable | None,
    wasted_core_s: Mapping[str, float] | None = None,
    *,
    exact: bool = True,
) -> Waste:
    """What the store knows of wasted work: attempts beyond each trial's first. With
    `wasted_core_s` (trial id -> core-seconds of its abandoned attempts, `wasted_core_seconds`)
    those count instead of the bound; `exact` False where they are estimates themselves (the
    abandoned deliveries' ends told from the store)."""
    redeliveries = trials = 0
    usage: list[tuple[float | None, str | None]] = []
    for r in results:
        extra = max(0, r.attempts - 1)
        if wasted_core_s is not None:
            usage.append((wasted_core_s.get(r.trial_id, 0.0), r.pool))
        elif extra and r.core_s:
            usage.append((r.core_s * extra, r.pool))
        redeliveries += extra
        trials += extra > 0
    total = spent(usage, prices)
    measured = wasted_core_s is not None
    return Waste(
        redeliveries, trials, total.core_s, total.money, exact and measured, measured and not exact
    )


def _final_start(result: TrialRecord, starts: Sequence[TrialStart]) -> TrialStart | None:
    """The delivery that produced the result: its worker's last start before it finished."""
    own = [s for s in starts if s.worker == result.worker and s.started_at <= result.finished_at]
    return max(own, key=lambda s: s.started_at) if own else None


def wasted_seconds(
    results: Iterable[TrialRecord],
    starts: Iterable[TrialStart],
    folds: Iterable[FoldRecord],
    stopped_at: Mapping[str, float] | None = None,
    *,
    rounds: Iterable[RoundRecord] = (),
) -> dict[str, float]:
    """Worker seconds each trial's abandoned deliveries cost that nothing used (trial id ->
    seconds; docs/reliability.md, Preemption storm).

    A delivery is abandoned when it is not the one whose worker stored the result (a hand-back
    on SIGTERM, a crash). It ran from its start to its end: when its worker stopped, where
    `stopped_at` (worker name -> time, e.g. a drill's or a pod's record) says. Otherwise the
    store does not know the end, and bounds it: before the trial's next delivery began (or its
    result), and before the fold in progress would have finished, taking that fold to last as
    long as the trial's longest stored fold (it stopped before finishing that fold, or the fold
    would be stored). Of the span, the folds it finished and checkpointed (`FoldRecord`: fit
    and score seconds) were taken by a later delivery instead of trained again; the rest (the
    fold in progress, loading the data) is wasted. A fold cut on the stop and stored as a
    round checkpoint (`RoundRecord`, `checkpoint: rounds`) was continued by a later delivery:
    its fit seconds are not wasted either, and the delivery ended when it stored it. A delivery
    of several trials (a batch) counts its seconds, and its cut fit's, equally to each."""
    by_trial: dict[str, list[TrialStart]] = {}
    batch: dict[tuple[str, float], int] = {}
    members: dict[tuple[str, float], set[str]] = {}
    for s in starts:
        by_trial.setdefault(s.trial_id, []).append(s)
        batch[s.worker, s.started_at] = batch.get((s.worker, s.started_at), 0) + 1
        members.setdefault((s.worker, s.started_at), set()).add(s.trial_id)
    saved: dict[tuple[str, str], list[FoldRecord]] = {}
    for f in folds:
        saved.setdefault((f.trial_id, f.worker), []).append(f)
    cuts: dict[str, list[RoundRecord]] = {}
    for c in rounds:
        cuts.setdefault(c.worker, []).append(c)
    wasted: dict[str, float] = {}
    for r in results:
        mine = sorted(
            (s for s in by_trial.get(r.trial_id, []) if s.revision == r.revision),
            key=lambda s: (s.started_at, s.attempt),
        )
        final = _final_start(r, mine)
        own_folds = [f for w in {s.worker for s in mine} for f in saved.get((r.trial_id, w), [])]
        longest = max((f.fit_time_s + f.score_time_s for f in own_folds), default=None)
        total = 0.0
        for i, s in enumerate(mine):
            if s is final or s.started_at > r.finished_at:
                continue
            end = min(mine[i + 1].started_at if i + 1 < len(mine) else r.finished_at, r.finished_at)
            done = [
                f
                for f in saved.get((r.trial_id, s.worker), [])
                if f.revision == r.revision and s.started_at <= f.finished_at <= end
            ]
            cut = [
                c
                for c in cuts.get(s.worker, [])
                if c.trial_id in members[s.worker, s.started_at]
                and c.revision == r.revision
                and s.started_at <= c.saved_at <= end
            ]
            if stopped_at is not None and s.worker in stopped_at:
                end = min(end, stopped_at[s.worker])
            elif cut:
                end = max(c.saved_at for c in cut)  # stored on the stop, then handed back
            elif longest is not None:
                end = min(end, max((f.finished_at for f in done), default=s.started_at) + longest)
            share = batch[s.worker, s.started_at]
            span = max(0.0, end - s.started_at) / share
            kept = sum(f.fit_time_s + f.score_time_s for f in done if f.finished_at <= end)
            kept += sum(c.fit_time_s for c in cut) / share
            total += max(0.0, span - kept)
        if total:
            wasted[r.trial_id] = total
    return wasted


def wasted_core_seconds(
    results: Iterable[TrialRecord],
    starts: Iterable[TrialStart],
    folds: Iterable[FoldRecord],
    stopped_at: Mapping[str, float] | None = None,
    *,
    rounds: Iterable[RoundRecord] = (),
) -> dict[str, float]:
    """`wasted_seconds` in core-seconds, for the ledger: each trial's wasted seconds times the
    cores its stored result was charged for (its core-seconds over its delivery's seconds and
    the checkpointed seconds it carries, `tunefleet_worker.ledger`; one where that cannot be
    told)."""
    results = list(results)
    starts = list(starts)
    folds = list(folds)
    rounds = list(rounds)
    seconds = wasted_seconds(results, starts, folds, stopped_at, rounds=rounds)
    by_trial: dict[str, list[TrialStart]] = {}
    for s in starts:
        by_trial.setdefault(s.trial_id, []).append(s)
    out: dict[str, float] = {}
    for r in results:
        if r.trial_id not in seconds:
            continue
        final = _final_start(r, [s for s in by_trial[r.trial_id] if s.revision == r.revision])
        span = r.finished_at - final.started_at if final is not None else 0.0
        if final is not None:
            span += sum(
                f.fit_time_s + f.score_time_s
                for f in folds
                if f.trial_id == r.trial_id
                and f.revision == r.revision
                and f.finished_at <= final.started_at
            )
            span += sum(
                c.fit_time_s
                for c in rounds
                if c.trial_id == r.trial_id
                and c.revision == r.revision
                and c.saved_at <= final.started_at
            )
        cores = max(1.0, round(r.core_s / span)) if r.core_s and span > 0 else 1.0
        out[r.trial_id] = seconds[r.trial_id] * cores
    return out


@dataclass(frozen=True)
class Improvement:
    """What the study paid for its score improvement, over its history (results in the order
    they finished): from the first scored result to the best.

    `per_unit` = the cost up to and including the result that found the best, divided by how
    far the best rose above the first scored result (in score units: scikit-learn scorers are
    greater-is-better). What was spent after the best was found bought no improvement:
    `after_best`. `steps`: each new best, with the cumulative cost when it was found."""

    first_score: float
    best_score: float
    to_best: Spent
    after_best: Spent
    steps: list[tuple[float, float, float | None]] = field(default_factory=list)

    @property
    def gain(self) -> float:
        return self.best_score - self.first_score

    def per_unit(self) -> tuple[float | None, float | None]:
        """(core-hours, money) per unit of score gained; None where nothing was gained."""
        if self.gain <= 0:
            return None, None
        money = self.to_best.money / self.gain if self.to_best.money is not None else None
        return self.to_best.core_hours / self.gain, money

    def as_dict(self) -> dict[str, Any]:
        core_hours, money = self.per_unit()
        return {
            "first_score": self.first_score,
            "best_score": self.best_score,
            "gain": self.gain,
            "core_hours_to_best": self.to_best.core_hours,
            "cost_to_best": self.to_best.money,
            "core_hours_after_best": self.after_best.core_hours,
            "cost_after_best": self.after_best.money,
            "core_hours_per_unit": core_hours,
            "cost_per_unit": money,
            "steps": [
                {"best": best, "core_s": core_s, "cost": money}
                for best, core_s, money in self.steps
            ],
        }


def improvement(results: Iterable[TrialRecord], prices: PriceTable | None) -> Improvement | None:
    """The study's score improvement and its cost; None before a scored result."""
    ordered = sorted(results, key=lambda r: (r.finished_at, r.trial_id))
    first: float | None = None
    best: float | None = None
    best_at = -1
    steps: list[tuple[float, float, float | None]] = []
    usage: list[tuple[float | None, str | None]] = []
    for i, r in enumerate(ordered):
        usage.append((r.core_s, r.pool))
        value = scored(r.status, r.score)
        if value is None:
            continue
        if first is None:
            first = value
        if best is None or value > best:
            best, best_at = value, i
            so_far = spent(usage, prices)
            steps.append((value, so_far.core_s, so_far.money))
    if first is None or best is None:
        return None
    return Improvement(
        first_score=first,
        best_score=best,
        to_best=spent(usage[: best_at + 1], prices),
        after_best=spent(usage[best_at + 1 :], prices),
        steps=steps,
    )


@dataclass(frozen=True)
class Ledger:
    study_id: str
    state: str
    prices: PriceTable | None
    total: Line
    by_pool: list[Line]
    by_library: list[Line]
    trials: list[Line]  # most expensive first
    waste: Waste
    improvement: Improvement | None
    budget: BudgetSpec | None = None

    @property
    def currency(self) -> str | None:
        return self.prices.currency if self.prices is not None else None

    def budget_used(self) -> float | None:
        """The share of the budget spent (1.0 = all of it); None without a budget."""
        if self.budget is None:
            return None
        used = self.total.core_hours if self.budget.core_hours is not None else self.total.money
        return None if used is None else used / self.budget.limit()

    def as_dict(self) -> dict[str, Any]:
        return {
            "study_id": self.study_id,
            "state": self.state,
            "currency": self.currency,
            "prices": self.prices.per_core_hour if self.prices is not None else None,
            "total": self.total.as_dict(),
            "by_pool": [line.as_dict() for line in self.by_pool],
            "by_library": [line.as_dict() for line in self.by_library],
            "trials": [line.as_dict() for line in self.trials],
            "preemptions": self.waste.as_dict(),
            "improvement": self.improvement.as_dict() if self.improvement else None,
            "budget": self.budget.model_dump(mode="json", exclude_none=True)
            if self.budget
            else None,
            "budget_used": self.budget_used(),
        }


def _grouped(results: Sequence[TrialRecord], key: str, prices: PriceTable | None) -> list[Line]:
    groups: dict[str, list[TrialRecord]] = {}
    for r in results:
        groups.setdefault(str(getattr(r, key) or "unknown"), []).append(r)
    return [_line(name, part, prices) for name, part in sorted(groups.items())]


def ledger(
    record: StudyRecord,
    results: Sequence[TrialRecord],
    prices: PriceTable | None,
    state: str = "",
    wasted_core_s: Mapping[str, float] | None = None,
    *,
    wasted_exact: bool = True,
) -> Ledger:
    """A study's ledger from its stored results, at `prices` (see `prices_for`)."""
    trials = sorted(
        (_line(r.trial_id, [r], prices) for r in results),
        key=lambda line: (-line.core_s, line.name),
    )
    return Ledger(
        study_id=record.study_id,
        state=state,
        prices=prices,
        total=_line("study", results, prices),
        by_pool=_grouped(results, "pool", prices),
        by_library=_grouped(results, "library", prices),
        trials=trials,
        waste=preemption_waste(results, prices, wasted_core_s, exact=wasted_exact),
        improvement=improvement(results, prices),
        budget=record.spec.budget,
    )
