"""How a batch of events becomes writes, and the rules of the writes that meet a document
already there: the same for every backend (`apply` drives a backend's `Writer`).

- A batch is written in one order: the plan first (a registration in the same batch may revise
  the study by it), then registrations, starts and results, then revisions, then cancels and
  resumes in arrival order (a study registered in this batch exists by then), then models.
  Fold checkpoints go with the starts: the first record of a fold stands (every delivery of
  a trial computes the same fold alike), and so do round checkpoints (by round).
  Every step is idempotent: a redelivered batch ends in the same state.
- A second result of a trial (a redelivery, a rerun, a late copy of a superseded revision)
  merges with the first (`merge`).
- A revision's registration keeps the stored results of the trials its plan has, and waits
  for the whole plan (`check_plan`).
- A stored model is never replaced by a failed refit (`model_replaces`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from tunefleet_contract.messages import (
    Event,
    FoldCheckpoint,
    ModelStored,
    RoundCheckpoint,
    StudyCancelled,
    StudyRegistered,
    StudyResumed,
    TrialResult,
    TrialsPlanned,
    TrialsStarted,
)
from tunefleet_runtime.store.documents import (
    Doc,
    fold_docs,
    planned_docs,
    result_doc,
    round_docs,
    start_docs,
    study_doc,
)

__all__ = [
    "Batch",
    "Merge",
    "PlanIncompleteError",
    "Writer",
    "apply",
    "check_plan",
    "control_fields",
    "kept_statuses",
    "merge",
    "model_replaces",
    "revised_fields",
]


class PlanIncompleteError(RuntimeError):
    """A revision's registration arrived before all of its planned trials were stored (another
    collector has them in hand): try again shortly, nothing is wrong."""


class Merge(Enum):
    KEEP = "keep"  # the stored result stands as it is
    REPLACE = "replace"  # the new result replaces it (in the later revision of the two)
    MOVE = "move"  # the stored result stands, moved to the new result's later revision


_RANK = {"failed": 0, "done": 1}


def merge(stored: Doc, new: Doc) -> Merge:
    """A trial that already has a result gets another: a done result beats a failed one, then
    the later revision's wins; the result kept is in the later revision either way."""
    if (_RANK[new["status"]], new["revision"]) > (_RANK[stored["status"]], stored["revision"]):
        return Merge.REPLACE
    if int(stored["revision"]) < int(new["revision"]):
        return Merge.MOVE
    return Merge.KEEP


def check_plan(event: StudyRegistered, stored: int) -> None:
    """A revision is made current only once its whole plan is stored (`stored` of it are):
    deciding what it keeps from part of its plan would hide kept results as superseded."""
    expected = event.n_trials if event.planned is None else event.planned
    if stored < expected:
        raise PlanIncompleteError(
            f"study {event.study_id} revision {event.revision}: {stored} of "
            f"{expected} planned trials stored"
        )


def kept_statuses(event: StudyRegistered) -> tuple[str, ...]:
    """The results of older revisions a new revision keeps (of its planned trials): failed ones
    too, unless it reruns failures."""
    return ("done",) if event.rerun_failed else ("done", "failed")


def revised_fields(event: StudyRegistered) -> Doc:
    """What a new revision sets on its study, last (after the results it keeps moved)."""
    return {
        "spec": event.spec.model_dump(mode="json"),
        "n_trials": event.n_trials,
        "revision": event.revision,
        "revised_at": event.published_at,
        "published": event.published,
        "kept": event.kept,
        "kept_failed": event.kept_failed,
        "superseded": event.superseded,
    }


_CANCEL_FIELDS = ("cancelled_at", "cancelled_by", "cancel_reason")


def control_fields(change: StudyCancelled | StudyResumed) -> tuple[Doc, tuple[str, ...]]:
    """A cancel or resume as the fields it sets and those it removes."""
    if isinstance(change, StudyCancelled):
        return {
            "cancelled_at": change.cancelled_at,
            "cancelled_by": change.by,
            "cancel_reason": change.reason,
        }, ()
    return {"resumed_at": change.resumed_at, "resumed_by": change.by}, _CANCEL_FIELDS


def model_replaces(stored_status: str | None, new: ModelStored) -> bool:
    """A stored model replaces whatever was there (a refit again, redelivered, after a
    failure); a failure never replaces a stored model."""
    return new.status != "failed" or stored_status != "done"


@dataclass
class Batch:
    """A batch of events sorted into what each write step takes."""

    now: float
    planned: list[Doc] = field(default_factory=list)
    studies: list[Doc] = field(default_factory=list)
    starts: list[Doc] = field(default_factory=list)
    results: dict[str, Doc] = field(default_factory=dict)  # the first of each trial
    revisions: list[StudyRegistered] = field(default_factory=list)
    control: list[StudyCancelled | StudyResumed] = field(default_factory=list)
    models: list[ModelStored] = field(default_factory=list)
    folds: list[Doc] = field(default_factory=list)
    rounds: list[Doc] = field(default_factory=list)

    @classmethod
    def of(cls, events: Iterable[Event], now: float | None = None) -> Batch:
        batch = cls(time.time() if now is None else now)
        for event in events:
            if isinstance(event, TrialsPlanned):
                batch.planned.extend(planned_docs(event))
            elif isinstance(event, StudyRegistered):
                batch.studies.append(study_doc(event, batch.now))
                if event.revision > 0:
                    batch.revisions.append(event)
            elif isinstance(event, StudyCancelled | StudyResumed):
                batch.control.append(event)
            elif isinstance(event, ModelStored):
                batch.models.append(event)
            elif isinstance(event, TrialsStarted):
                batch.starts.extend(start_docs(event))
            elif isinstance(event, FoldCheckpoint):
                batch.folds.extend(fold_docs(event))
            elif isinstance(event, RoundCheckpoint):
                batch.rounds.extend(round_docs(event))
            elif isinstance(event, TrialResult):
                # Within one batch the first result of a trial wins, as across batches.
                batch.results.setdefault(event.trial_id, result_doc(event, batch.now))
        return batch


class Writer(Protocol):
    """The write steps of one backend, each idempotent."""

    def insert_planned(self, docs: list[Doc]) -> int:
        """Insert the plan's documents; one already there moves to the later revision (its
        other fields stand). Returns how many were new."""
        ...

    def insert_new(self, collection: str, docs: list[Doc]) -> int:
        """Insert, treating a document already there as stored. Returns how many were new."""
        ...

    def insert_results(self, docs: list[Doc]) -> int:
        """Insert results; one whose trial has a result merges with it (`merge`)."""
        ...

    def revise(self, event: StudyRegistered) -> None:
        """Make `event.revision` its study's current one, once (see the module's docstring)."""
        ...

    def control(self, change: StudyCancelled | StudyResumed) -> None: ...

    def write_model(self, model: ModelStored, now: float) -> bool:
        """Store a refit's outcome (`model_replaces`); whether it was written."""
        ...


def apply(writer: Writer, events: Iterable[Event]) -> dict[str, Any]:
    """Store a batch idempotently, in the one order; raises (the caller must not ack) on any
    real failure. Counts of what was written, by step."""
    batch = Batch.of(events)
    counts = {
        "planned": writer.insert_planned(batch.planned),
        "studies": writer.insert_new("studies", batch.studies),
        "starts": writer.insert_new("starts", batch.starts),
        "folds": writer.insert_new("folds", batch.folds),
        "rounds": writer.insert_new("rounds", batch.rounds),
        "trials": writer.insert_results(list(batch.results.values())),
    }
    for revision in batch.revisions:
        writer.revise(revision)
    for change in batch.control:
        writer.control(change)
    counts["models"] = sum(writer.write_model(model, batch.now) for model in batch.models)
    counts["control"] = len(batch.control)
    counts["revisions"] = len(batch.revisions)
    return counts
