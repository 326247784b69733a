"""The store boundary: what every backend does (`Store`), and what is computed from it the
same way whatever the backend (a study's status, a trial's detail).

Readers never see a document, and writers write events: the collector's batches and the
planner's own records of an adaptive search go through `Store.write_events`, which every
backend implements with the same documents (`documents`) and rules (`rules`). The conformance
suite (tests/integration/test_store_contract.py) holds every backend to this protocol.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol

from pymongo.errors import PyMongoError
from tunefleet_contract.messages import Event, ModelStored
from tunefleet_runtime.records import (
    FoldRecord,
    PlannedTrial,
    ResultState,
    RoundRecord,
    StudyActivity,
    StudyRecord,
    StudyStatus,
    TrialDetail,
    TrialRecord,
    TrialStart,
)
from tunefleet_runtime.store.documents import Doc

__all__ = [
    "CURVES_SAMPLE",
    "STORE_ERRORS",
    "Store",
    "check_prefix",
    "study_status",
    "trial_detail",
]

# What a store that is away (or refuses) raises: callers wait and retry, or say so, without
# knowing which backend is behind the store. A backend with a driver of its own adds its base
# error here.
STORE_ERRORS: tuple[type[BaseException], ...] = (PyMongoError,)
# The finished curves a trial of the median rule reads, the most recent first: every trial
# reads them once, so a study of 10,000 trials must not make each read all of them (500
# curves of up to 500 points: about 4 MB at most).
CURVES_SAMPLE = 500


class Store(Protocol):
    """What tunefleet keeps, as its writers and readers see it. `MongoStore` keeps it in
    MongoDB (or FerretDB), `MemoryStore` in a process's memory; `open_store` picks one from the
    settings. A new backend implements this protocol and passes the conformance suite."""

    # -- writing -----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Make the store ready to be written (indexes); idempotent, run by the collector."""
        ...

    def write_events(self, events: Iterable[Event]) -> dict[str, int]:
        """Store a batch idempotently (`rules.apply`); raises on any failure, and then the
        caller must not ack."""
        ...

    def probe_write(self) -> None:
        """Write one small record of the store's own; raises whatever the store answers a write
        with now (the collector's test of whether the store or a batch is at fault)."""
        ...

    def take_turn(self, role: str, holder: str) -> str | None:
        """Record that `holder` acts as `role` now, and return who acted as it last (None: no
        one yet), in one atomic step. The planner that reacts to results takes its turn at each
        result: a turn that was another's means decisions were made elsewhere meanwhile, and
        what it holds in memory is stale."""
        ...

    # -- reading -----------------------------------------------------------------------------

    def study(self, study_id: str) -> StudyRecord | None: ...

    def studies(self, limit: int = 50) -> list[StudyRecord]:
        """The most recent studies, newest first."""
        ...

    def results(self, study_id: str, revision: int) -> list[TrialRecord]:
        """The study's results in this revision, best first (failed ones last)."""
        ...

    def results_since(
        self, study_id: str, revision: int, since: float
    ) -> tuple[list[TrialRecord], float | None]:
        """The results of this revision stored at or after `since` (by the store's writer's
        clock, `stored_at`), in no particular order, and the latest `stored_at` among them (None:
        none). A reader that keeps a study's results reads them once (`since` 0) and then only
        what was stored since: a result that replaces or moves into this revision is stored
        anew. Writes of one moment can become visible out of order (two collectors, a batch
        in flight), so a reader reads again from a margin before the latest it saw.

        A new revision's results are all there before its study says it is current (see
        `Writer.revise`): a reader of a revision starts with a read from 0."""
        ...

    def results_of(
        self, study_id: str, revision: int, trial_ids: Collection[str]
    ) -> list[TrialRecord]:
        """The stored results of these trials that are in this revision (those the events
        stream announced), in no particular order; looked up by id, whatever the study's size."""
        ...

    def starts(self, study_id: str, revision: int) -> list[TrialStart]: ...

    def leaderboard(
        self, study_id: str, revision: int, *, limit: int, library: str | None = None
    ) -> list[TrialRecord]:
        """The best `done` results with a score (scikit-learn scorers: greater is better)."""
        ...

    def finished_curves(
        self, study_id: str, revision: int, library: str, *, limit: int = CURVES_SAMPLE
    ) -> list[Doc]:
        """The stored early stopping summaries (`EarlyStopped`) of the library's `done` trials
        in this revision that ran to their own end (not stopped by the median rule), the
        `limit` most recently finished: what the median rule across trials compares a new
        trial with."""
        ...

    def finished_since(
        self, study_id: str, revision: int, since: float
    ) -> tuple[int, float | None]:
        """How many results of this revision finished after `since`, and when its first
        result finished (None: none yet)."""
        ...

    def fold_checkpoints(
        self, study_id: str, revision: int, trial_ids: Collection[str], folds: int
    ) -> list[FoldRecord]:
        """The stored finished folds (of `folds`) of these trials in this revision, in no
        particular order: what a delivery of them need not train again."""
        ...

    def round_checkpoints(
        self, study_id: str, revision: int, trial_ids: Collection[str], folds: int
    ) -> list[RoundRecord]:
        """The stored round checkpoints (folds cut at a round on a stop, of `folds`) of these
        trials in this revision, in no particular order."""
        ...

    def planned_trials(self, study_id: str, revision: int) -> list[str]:
        """The study's trial set in this revision, in the planner's order."""
        ...

    def result_states(self, study_id: str) -> dict[str, ResultState]:
        """Every stored result of the study, of any revision, by trial id."""
        ...

    def plan(self, study_id: str, trial_ids: Collection[str] | None = None) -> list[PlannedTrial]:
        """Every trial the planner decided for the study (or those of `trial_ids`), of any
        revision, in its order, each with the search that decided it."""
        ...

    def trial(self, trial_id: str) -> TrialDetail | None:
        """One trial by id, or by a unique prefix of 6 or more hex digits (ValueError if
        several trials start with it)."""
        ...

    def models(self, study_id: str, trial_id: str | None = None) -> list[ModelStored]:
        """The study's refits that ended (of one trial, or all), most recently stored first."""
        ...

    def studies_using(self, sha256: str) -> list[str]:
        """The ids of the studies whose spec names this uploaded dataset."""
        ...

    def model_blobs(self) -> set[str]:
        """The hashes of the blobs that stored models (of every study) name."""
        ...


def study_status(store: Store, study_id: str) -> StudyStatus | None:
    """Where a study stands, from the store: the one status computation (live progress applies
    events to the same `StudyActivity`)."""
    record = store.study(study_id)
    if record is None:
        return None
    activity = StudyActivity(study_id, revision=record.revision)
    activity.study(record)
    activity.load(store.results(study_id, record.revision), store.starts(study_id, record.revision))
    if record.spec.adaptive:  # the plan says how far its adaptive searches have decided
        activity.plan(t for t in store.plan(study_id) if t.revision == record.revision)
    return activity.status(record.name)


def trial_detail(
    trial_id: str,
    result: TrialRecord | None,
    starts: list[TrialStart],
    study_id: str,
    current_revision: int | None,
) -> TrialDetail | None:
    """A trial from its result and its starts (a trial that started and has no result yet is
    `running`); `current_revision` is its study's."""
    if result is None and not starts:
        return None
    revision = result.revision if result is not None else starts[-1].revision
    return TrialDetail(
        trial_id=trial_id,
        study_id=study_id,
        status=result.status if result is not None else "running",
        revision=revision,
        result=result,
        starts=starts,
        # A trial that a fixed spec dropped: stored, but no longer part of its study.
        superseded=current_revision is not None and revision < current_revision,
    )


def check_prefix(trial_id: str) -> None:
    """Refuse a trial id prefix too short (or not hex) to look up."""
    if len(trial_id) < 24 and (
        len(trial_id) < 6 or not all(c in "0123456789abcdef" for c in trial_id)
    ):
        raise ValueError("give at least 6 hex digits of a trial id")
