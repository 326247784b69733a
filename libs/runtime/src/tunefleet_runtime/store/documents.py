"""The documents every store keeps, built from events, and read back as records.

One layout for every backend (MongoDB/FerretDB, and the in-memory store that keeps the same
documents in dictionaries):

    studies  _id = study id      the spec, the number of trials, when it was submitted, and
                                 the current `revision` (each resume makes one; a spec fix
                                 replaces spec and n_trials)
    trials   _id = trial id      one result per trial (see `rules.merge` for a second one)
    starts   _id = trial:revision:attempt   a worker began a trial (for "running", redeliveries)
    planned  _id = trial id      the planner's decisions: the study's trial set, each trial with
                                 the latest revision that has it, its library, parameters,
                                 position (`seq`) in the plan, the search that decided it (and
                                 its rung) and, when an adaptive search decided it on a result,
                                 that trial's id (`after`)
    models   _id = trial id      a refit's outcome (see `rules.model_replaces`)
    folds    _id = trial:revision:fold   a finished fold of a trial (`FoldCheckpoint`): its
                                 score and times, what a later delivery takes instead of
                                 training it again; the first record of a fold stands
    rounds   _id = trial:revision:fold:round   a fold cut at a round on a stop
                                 (`RoundCheckpoint`): the booster's blob, which a later
                                 delivery continues from (the highest round); the first
                                 record of a round stands
    turns    _id = role          which process acted as a role last (`Store.take_turn`)

Documents hold no NaN or infinity (`finite`), no key with `.` or a leading `$` (the contract
refuses them in every message), and no nested arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from tunefleet_contract.documents import finite
from tunefleet_contract.messages import (
    FoldCheckpoint,
    ModelStored,
    RoundCheckpoint,
    StudyRegistered,
    TrialResult,
    TrialsPlanned,
    TrialsStarted,
)
from tunefleet_contract.spec import StudySpec
from tunefleet_runtime.records import (
    FoldRecord,
    PlannedTrial,
    RoundRecord,
    StudyRecord,
    TrialRecord,
    TrialStart,
)

__all__ = [
    "Doc",
    "fold_docs",
    "fold_id",
    "fold_record",
    "model_doc",
    "model_record",
    "planned_docs",
    "planned_trial",
    "ran_to_their_end",
    "result_doc",
    "round_docs",
    "round_record",
    "start_docs",
    "study_doc",
    "study_record",
    "trial_record",
    "trial_start",
]

Doc = dict[str, Any]


def planned_docs(event: TrialsPlanned) -> list[Doc]:
    return [
        {
            "_id": trial.trial_id,
            "study_id": event.study_id,
            "revision": event.revision,
            "seq": event.first + i,
            "library": trial.library,
            "params": finite(trial.params),
            **({"after": event.after} if event.after is not None else {}),
            **({"search": trial.search} if trial.search is not None else {}),
            **({"rung": trial.rung} if trial.rung is not None else {}),
        }
        for i, trial in enumerate(event.trials)
    ]


def study_doc(event: StudyRegistered, now: float) -> Doc:
    doc = finite(event.model_dump(mode="json", exclude={"rerun_failed"}))
    return {"_id": event.study_id, **doc, "stored_at": now}


def start_docs(event: TrialsStarted) -> list[Doc]:
    return [
        {
            "_id": f"{tid}:{event.revision}:{event.attempt}",
            "study_id": event.study_id,
            "trial_id": tid,
            "worker": event.worker,
            "attempt": event.attempt,
            "started_at": event.started_at,
            "revision": event.revision,
            **({"preemptions": event.preemptions} if event.preemptions else {}),
        }
        for tid in event.trial_ids
    ]


def fold_id(trial_id: str, revision: int, fold: int) -> str:
    return f"{trial_id}:{revision}:{fold}"


def fold_docs(event: FoldCheckpoint) -> list[Doc]:
    return [
        {
            "_id": fold_id(entry.trial_id, event.revision, event.fold),
            "study_id": event.study_id,
            "trial_id": entry.trial_id,
            "revision": event.revision,
            "fold": event.fold,
            "folds": event.folds,
            "score": entry.score,
            "fit_time_s": entry.fit_time_s,
            "score_time_s": entry.score_time_s,
            "worker": event.worker,
            "finished_at": event.finished_at,
        }
        for entry in event.trials
    ]


def round_docs(event: RoundCheckpoint) -> list[Doc]:
    fields = event.model_dump(exclude={"schema_version", "study_id"})
    key = f"{fold_id(event.trial_id, event.revision, event.fold)}:{event.round}"
    return [{"_id": key, "study_id": event.study_id, **fields}]


def round_record(doc: Doc) -> RoundRecord:
    return RoundRecord(
        trial_id=doc["trial_id"],
        revision=int(doc["revision"]),
        fold=int(doc["fold"]),
        folds=int(doc["folds"]),
        round=int(doc["round"]),
        rounds=int(doc["rounds"]),
        sha256=str(doc["sha256"]),
        format=str(doc["format"]),
        size=int(doc["size"]),
        worker=str(doc.get("worker") or ""),
        saved_at=float(doc["saved_at"]),
        fit_time_s=float(doc.get("fit_time_s") or 0.0),
    )


def result_doc(event: TrialResult, now: float) -> Doc:
    return {"_id": event.trial_id, **finite(event.model_dump()), "stored_at": now}


def model_doc(model: ModelStored, now: float) -> Doc:
    return {"_id": model.trial_id, **finite(model.model_dump(mode="json")), "stored_at": now}


def study_record(doc: Doc) -> StudyRecord:
    return StudyRecord(
        study_id=doc["_id"],
        spec=StudySpec.model_validate(doc["spec"]),
        n_trials=int(doc["n_trials"]),
        revision=int(doc["revision"]),
        submitted_at=float(doc["submitted_at"]),
        cancelled_at=doc.get("cancelled_at"),
        cancelled_by=doc.get("cancelled_by"),
        cancel_reason=doc.get("cancel_reason"),
        published=int(doc.get("published") or 0),
        kept=int(doc.get("kept") or 0),
        kept_failed=int(doc.get("kept_failed") or 0),
        superseded=int(doc.get("superseded") or 0),
    )


_RESULT_FIELDS = frozenset(f.name for f in fields(TrialRecord)) - {"trial_id"}


def trial_record(doc: Doc) -> TrialRecord:
    return TrialRecord(trial_id=doc["_id"], **{k: v for k, v in doc.items() if k in _RESULT_FIELDS})


def trial_start(doc: Doc) -> TrialStart:
    return TrialStart(
        trial_id=doc["trial_id"],
        attempt=int(doc["attempt"]),
        worker=doc["worker"],
        started_at=float(doc["started_at"]),
        revision=int(doc["revision"]),
        preemptions=int(doc.get("preemptions") or 0),
    )


def fold_record(doc: Doc) -> FoldRecord:
    score = doc.get("score")
    return FoldRecord(
        trial_id=doc["trial_id"],
        revision=int(doc["revision"]),
        fold=int(doc["fold"]),
        folds=int(doc["folds"]),
        score=None if score is None else float(score),
        fit_time_s=float(doc["fit_time_s"]),
        score_time_s=float(doc["score_time_s"]),
        worker=str(doc.get("worker") or ""),
        finished_at=float(doc["finished_at"]),
    )


def model_record(doc: Doc) -> ModelStored:
    return ModelStored.model_validate(
        {k: v for k, v in doc.items() if k not in ("_id", "stored_at")}
    )


def planned_trial(doc: Doc) -> PlannedTrial:
    return PlannedTrial(
        trial_id=doc["_id"],
        library=doc["library"],
        params=doc["params"],
        revision=int(doc["revision"]),
        after=doc.get("after"),
        search=doc.get("search"),
        rung=doc.get("rung"),
    )


def ran_to_their_end(summaries: Iterable[Mapping[str, Any] | None]) -> list[Doc]:
    """The early stopping summaries of trials that stopped by their own curve: the median
    rule's stopped trials are left out (their curves end where the rule cut them)."""
    return [dict(s) for s in summaries if s and s.get("stopped_by") != "median"]
