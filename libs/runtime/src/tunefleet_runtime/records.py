"""What the store gives its readers: typed records instead of documents, one set of study
states, and the one computation of a study's status.

A store backend (`tunefleet_runtime.store`: MongoDB, or memory in unit tests)
turns what it holds into these records; the client, the CLI and live progress read nothing
else. Live progress (`tunefleet.progress`) starts from a `StudyActivity` read from the store and
applies the events it sees to it: the same counting, seconds earlier.

About 420 lines: the records and the two computations made from them (a study's status, what a
resume reruns) stay together, so that the store and live progress count alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from tunefleet_contract.cost import is_budget_stop
from tunefleet_contract.messages import (
    StudyCancelled,
    StudyResumed,
    TrialResult,
    TrialsPlanned,
    TrialsStarted,
)
from tunefleet_contract.params import Scalar
from tunefleet_contract.search import Recorded
from tunefleet_contract.search.views import SearchStatus, SearchTally, scored
from tunefleet_contract.spec import StudySpec

__all__ = [
    "FoldRecord",
    "PlannedTrial",
    "Reruns",
    "ResultState",
    "RoundRecord",
    "StudyActivity",
    "StudyRecord",
    "StudyState",
    "StudyStatus",
    "TrialDetail",
    "TrialRecord",
    "TrialStart",
    "is_complete",
    "reruns",
    "study_state",
]


class ResultState(NamedTuple):
    """How a stored trial ended, in short: what a resume and a restarted planner need."""

    status: str  # done | failed
    revision: int
    score: float | None


@dataclass(frozen=True)
class Reruns:
    """What a resume does with a revision's planned trials: it publishes those without a
    result (and failed ones, when it reruns failures); the rest keep their results."""

    publish: tuple[str, ...]  # in the plan's order
    kept: int
    kept_failed: int  # of those kept: failed ones (not rerun)


def reruns(
    planned: Sequence[str], stored: Mapping[str, ResultState], *, rerun_failed: bool
) -> Reruns:
    """The one computation of what a resume republishes and keeps: the planner's, and the
    client's when it can tell from the store that there is nothing to do."""
    failed = {tid for tid in planned if tid in stored and stored[tid].status == "failed"}
    publish = tuple(tid for tid in planned if tid not in stored or (rerun_failed and tid in failed))
    return Reruns(publish, len(planned) - len(publish), 0 if rerun_failed else len(failed))


@dataclass(frozen=True)
class PlannedTrial:
    """One of the planner's decisions as stored: the trial, the latest revision that has it,
    the search that decided it (and its rung), and for an adaptive search the trial whose
    result it was decided on (None: up front). `search` is None in plans stored before the
    plan named it."""

    trial_id: str
    library: str
    params: Mapping[str, Scalar]
    revision: int
    after: str | None = None
    search: str | None = None
    rung: int | None = None


class StudyState(StrEnum):
    SUBMITTED = "submitted"  # published; the planner has not registered it yet
    QUEUED = "queued"  # registered; no trial has started
    RUNNING = "running"
    COMPLETE = "complete"  # every trial of the current revision has a result
    CANCELLED = "cancelled"
    BUDGET_SPENT = "budget spent"  # the planner stopped it: its budget is spent (not failed)


def is_complete(finished: int, n_trials: int) -> bool:
    """Whether every trial of a study has a result (the one definition)."""
    return n_trials > 0 and finished >= n_trials


def study_state(
    *,
    registered: bool,
    cancelled: bool,
    complete: bool,
    started: bool,
    budget_spent: bool = False,
) -> StudyState:
    """The one naming of where a study stands (CLI, Python API, reports). A study the
    planner stopped for its budget (`budget_spent`, a cancel of its own) ended that way."""
    if cancelled:
        return StudyState.BUDGET_SPENT if budget_spent else StudyState.CANCELLED
    if not registered:
        return StudyState.SUBMITTED
    if complete:
        return StudyState.COMPLETE
    return StudyState.RUNNING if started else StudyState.QUEUED


@dataclass(frozen=True)
class StudyRecord:
    """A registered study, in its current revision."""

    study_id: str
    spec: StudySpec
    n_trials: int
    revision: int
    submitted_at: float
    cancelled_at: float | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    # What the planner decided for the current revision (see StudyRegistered).
    published: int = 0
    kept: int = 0
    kept_failed: int = 0
    superseded: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def budget_spent(self) -> bool:
        """Stopped by the planner because its budget is spent (a cancel of its own)."""
        return self.cancelled and is_budget_stop(self.cancelled_by, self.cancel_reason)


@dataclass(frozen=True)
class TrialRecord:
    """One stored result."""

    trial_id: str
    study_id: str
    library: str
    params: Mapping[str, Scalar]
    status: str  # done | failed
    revision: int
    finished_at: float
    score: float | None = None
    score_std: float | None = None
    fold_scores: list[float | None] = field(default_factory=list)
    metric: str | None = None
    task: str | None = None
    fit_time_s: float | None = None
    score_time_s: float | None = None
    fit_shared_by: int = 1  # trials of one family scored from the same fits (see TrialResult)
    library_version: str | None = None
    worker: str = ""
    attempts: int = 1
    error: str | None = None
    reason: str | None = None
    # How early stopping chose the rounds (`EarlyStopped` as stored); None without it.
    early_stopping: Mapping[str, Any] | None = None
    core_s: float | None = None  # what the trial cost its worker (see TrialResult)
    pool: str | None = None  # spot | on-demand
    # Folds taken from an earlier delivery's fold checkpoints (None: every fold was trained).
    resumed_folds: int | None = None
    # The round a fold continued from on an earlier delivery's round checkpoint (None: none).
    resumed_at_round: int | None = None

    @property
    def best_round(self) -> int | None:
        """The rounds early stopping chose for this trial (None: its parameters say)."""
        stop = self.early_stopping
        return int(stop["best_round"]) if stop and stop.get("best_round") else None

    def as_dict(self) -> dict[str, Any]:
        """For JSON output: the fields by name, `trial_id` first."""
        return {**asdict(self), "params": dict(self.params)}


@dataclass(frozen=True)
class TrialStart:
    trial_id: str
    attempt: int
    worker: str
    started_at: float
    revision: int
    preemptions: int = 0  # hand-backs on a stop (SIGTERM) before this delivery


@dataclass(frozen=True)
class FoldRecord:
    """A finished fold of a trial, stored from a `FoldCheckpoint`: what a later delivery of
    the trial takes instead of training the fold again."""

    trial_id: str
    revision: int
    fold: int
    folds: int
    score: float | None  # None: not finite (no store keeps NaN)
    fit_time_s: float
    score_time_s: float
    worker: str
    finished_at: float


@dataclass(frozen=True)
class RoundRecord:
    """A fold cut at a round on a stop, stored from a `RoundCheckpoint`: the booster's blob,
    which a later delivery of the trial continues training from."""

    trial_id: str
    revision: int
    fold: int
    folds: int
    round: int
    rounds: int
    sha256: str
    format: str
    size: int
    worker: str
    saved_at: float
    fit_time_s: float = 0.0  # the fit's seconds up to the cut, every delivery's


@dataclass(frozen=True)
class TrialDetail:
    """One trial, as `tunefleet show` tells it: its result (if it has one), every delivery, and
    whether a resume with a fixed spec dropped it from its study."""

    trial_id: str
    study_id: str
    status: str  # done | failed | running (started, no result yet)
    revision: int
    result: TrialRecord | None
    starts: list[TrialStart]
    superseded: bool

    def as_dict(self) -> dict[str, Any]:
        detail: dict[str, Any] = self.result.as_dict() if self.result else {}
        detail.update(
            trial_id=self.trial_id,
            study_id=self.study_id,
            status=self.status,
            revision=self.revision,
            superseded=self.superseded,
            starts=[
                {
                    "attempt": s.attempt,
                    "worker": s.worker,
                    "started_at": s.started_at,
                    "revision": s.revision,
                    "preemptions": s.preemptions,
                }
                for s in self.starts
            ],
        )
        return detail


@dataclass(frozen=True)
class StudyStatus:
    study_id: str
    name: str
    n_trials: int
    done: int
    failed: int
    running: int
    queued: int
    redelivered: int
    workers: int
    best_score: float | None
    best_trial_id: str | None
    metric: str | None
    cancelled: bool = False
    # Deliveries beyond each trial's first that the broker made: crashes, lost connections, a
    # trial abandoned after the grace period. Not the preemptions, counted apart.
    redeliveries: int = 0
    registered: bool = True
    searches: tuple[SearchStatus, ...] = ()  # per library, in the spec's order
    undecided: int = 0  # trials adaptive searches have yet to decide (neither queued nor run)
    budget_spent: bool = False  # cancelled by the planner: the budget is spent
    # Core-seconds of the results so far, per pool (`tunefleet_contract.cost.spent` prices it).
    core_s_by_pool: Mapping[str, float] = field(default_factory=dict)
    # Hand-backs of trials by workers told to stop (a spot node's notice), in all: never a
    # failure, never counted against the delivery limit.
    preemptions: int = 0
    preempted: int = 0  # trials handed back at least once

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def complete(self) -> bool:
        return is_complete(self.finished, self.n_trials)

    @property
    def state(self) -> StudyState:
        return study_state(
            registered=self.registered,
            cancelled=self.cancelled,
            complete=self.complete,
            started=bool(self.finished or self.running),
            budget_spent=self.budget_spent,
        )


@dataclass
class StudyActivity:
    """The counting behind a study's status, in one revision: results, deliveries, workers,
    the best score, and per library its search (`tunefleet_contract.search.views.SearchTally`: an
    adaptive one's trials decided so far). Loaded from the store, and (live progress) kept
    current from events."""

    study_id: str
    revision: int = 0
    n_trials: int = 0
    registered: bool = False
    metric: str | None = None
    cancelled: bool = False
    budget_spent: bool = False
    results: dict[str, str] = field(default_factory=dict)  # trial id -> done/failed
    # Trial id -> its result's core-seconds and pool (the first result of each trial).
    usage: dict[str, tuple[float, str | None]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)  # trial id -> highest attempt
    preemptions: dict[str, int] = field(default_factory=dict)  # trial id -> hand-backs so far
    workers: set[str] = field(default_factory=set)
    best: tuple[float, str] | None = None
    spec: StudySpec | None = None
    searches: SearchTally | None = None  # once the spec is known
    # Results and decisions seen before the spec (events ahead of the registration).
    unsorted_results: list[TrialResult | TrialRecord] = field(default_factory=list)
    unsorted_plan: list[Recorded] = field(default_factory=list)

    def restart(self, revision: int) -> None:
        """A newer revision: what it keeps is the store's to say; count it from nothing."""
        self.revision = revision
        self.results.clear()
        self.usage.clear()
        self.attempts.clear()
        self.preemptions.clear()
        self.workers.clear()
        self.best = None
        self.searches = None if self.spec is None else SearchTally(self.spec)
        self.unsorted_results.clear()
        self.unsorted_plan.clear()

    def study(self, record: StudyRecord) -> None:
        self.registered = True
        self.n_trials = record.n_trials
        self.metric = self.metric or record.spec.metric
        self.cancelled = record.cancelled
        self.budget_spent = record.budget_spent
        self.describe(record.spec)

    def registration(self, n_trials: int, spec: StudySpec) -> None:
        """What a `study.registered` event says (before the store has it)."""
        self.registered = True
        self.n_trials = n_trials
        self.metric = self.metric or spec.metric
        self.describe(spec)

    def describe(self, spec: StudySpec) -> None:
        """The spec the searches are told apart by (a resume's fixed spec replaces it)."""
        if self.searches is not None and spec == self.spec:
            return
        self.spec = spec
        self.searches = SearchTally(spec)
        self.plan(self.unsorted_plan)
        for result in self.unsorted_results:
            self._tally(result)
        self.unsorted_plan, self.unsorted_results = [], []

    def _tally(self, result: TrialResult | TrialRecord) -> None:
        if self.searches is None:
            self.unsorted_results.append(result)
        else:
            self.searches.result(
                result.trial_id, result.library, result.params, result.status, result.score
            )

    def plan(self, trials: Iterable[Recorded]) -> None:
        """Trials the planner decided (the store's plan, or a `trials.planned` event)."""
        for trial in trials:
            if self.searches is None:
                self.unsorted_plan.append(trial)
            else:
                self.searches.planned(
                    trial.trial_id, trial.library, trial.params, trial.search, trial.rung
                )

    def result(
        self,
        trial_id: str,
        status: str,
        score: float | None,
        metric: str | None,
        attempts: int,
        worker: str = "",
        core_s: float | None = None,
        pool: str | None = None,
    ) -> bool:
        """Count a result (the first of a trial counts; a repeat changes nothing but the
        attempts). True if it was new."""
        self.attempts[trial_id] = max(self.attempts.get(trial_id, 0), attempts)
        if worker:
            self.workers.add(worker)
        if trial_id in self.results:
            return False
        self.results[trial_id] = status
        if core_s:
            self.usage[trial_id] = (core_s, pool)
        if metric:
            self.metric = metric
        value = scored(status, score)
        if value is not None and (self.best is None or value > self.best[0]):
            self.best = (value, trial_id)
        return True

    def start(self, trial_id: str, attempt: int, worker: str, preemptions: int = 0) -> None:
        self.attempts[trial_id] = max(self.attempts.get(trial_id, 0), attempt)
        if preemptions:
            self.preemptions[trial_id] = max(self.preemptions.get(trial_id, 0), preemptions)
        self.workers.add(worker)

    def load(self, results: Iterable[TrialRecord], starts: Iterable[TrialStart]) -> None:
        for record in results:
            self.result(
                record.trial_id,
                record.status,
                record.score,
                record.metric,
                record.attempts,
                record.worker,
                record.core_s,
                record.pool,
            )
            # Always: a spec that arrived since (a resume's) starts the tally over.
            self._tally(record)
        for start in starts:
            self.start(start.trial_id, start.attempt, start.worker, start.preemptions)

    def apply(
        self, event: TrialResult | TrialsStarted | TrialsPlanned | StudyCancelled | StudyResumed
    ) -> bool:
        """An event of this revision; True if it was a new result."""
        if isinstance(event, TrialResult):
            self._tally(event)  # the tally counts a trial's first result only, as here
            return self.result(
                event.trial_id,
                event.status,
                event.score,
                event.metric,
                event.attempts,
                core_s=event.core_s,
                pool=event.pool,
            )
        if isinstance(event, TrialsPlanned):
            self.plan(event.trials)
        elif isinstance(event, TrialsStarted):
            for tid in event.trial_ids:
                self.start(tid, event.attempt, event.worker, event.preemptions or 0)
        elif isinstance(event, StudyCancelled):
            self.cancelled = True
            self.budget_spent = is_budget_stop(event.by, event.reason)
        else:
            self.cancelled = self.budget_spent = False
        return False

    def status(self, name: str = "") -> StudyStatus:
        done = sum(1 for s in self.results.values() if s == "done")
        failed = len(self.results) - done
        remaining = max(0, self.n_trials - done - failed)
        running = min(remaining, sum(1 for tid in self.attempts if tid not in self.results))
        searches = tuple(self.searches.status()) if self.searches else ()
        by_pool: dict[str, float] = {}
        for core_s, pool in self.usage.values():
            key = pool or "unknown"
            by_pool[key] = by_pool.get(key, 0.0) + core_s
        undecided = min(
            remaining - running,
            sum(max(0, (s.n_trials or 0) - s.decided) for s in searches if s.adaptive),
        )
        return StudyStatus(
            study_id=self.study_id,
            name=name,
            n_trials=self.n_trials,
            done=done,
            failed=failed,
            running=running,
            queued=max(0, remaining - running - undecided),
            redelivered=sum(1 for tid, n in self.attempts.items() if n > 1 + self._preempted(tid)),
            redeliveries=sum(
                max(0, n - 1 - self._preempted(tid)) for tid, n in self.attempts.items()
            ),
            workers=len(self.workers),
            best_score=self.best[0] if self.best else None,
            best_trial_id=self.best[1] if self.best else None,
            metric=self.metric,
            cancelled=self.cancelled,
            registered=self.registered,
            searches=searches,
            undecided=undecided,
            budget_spent=self.budget_spent,
            core_s_by_pool=by_pool,
            preemptions=sum(self.preemptions.values()),
            preempted=len(self.preemptions),
        )

    def _preempted(self, trial_id: str) -> int:
        return self.preemptions.get(trial_id, 0)
