"""MongoDB layout, writes (the collector's only) and the queries the CLI and API run.

Written to work on MongoDB and FerretDB alike: no transactions, `$group` with `$sum` only,
best scores by `$sort` + `$limit`, no NaN, no nested arrays, plain keys.

    studies  _id = study id      the spec, the number of trials, when it was submitted, and
                                 the current `revision` (each resume makes one; a spec fix
                                 replaces spec and n_trials)
    trials   _id = trial id      one result per trial (11000 = already there): a second one
                                 wins if it is `done` over `failed` (a requeued dead letter or
                                 a rerun that succeeds), or of the same status and a later
                                 revision; otherwise the first write stands
    starts   _id = trial:revision:attempt   a worker began a trial (for "running", redeliveries)
    planned  _id = trial id      the planner's decisions: the study's trial set, each trial with
                                 the latest revision that has it, its library, parameters and
                                 position (`seq`) in the plan

Every result and start carries the revision it was run in; a new revision moves the results it
keeps to itself. Status, leaderboards and results read the current revision only, so trials that
a spec fix dropped (superseded) stay stored but out of sight.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.database import Database
from pymongo.errors import BulkWriteError
from tunefleet_contract.messages import (
    Event,
    StudyCancelled,
    StudyRegistered,
    StudyResumed,
    TrialResult,
    TrialsPlanned,
    TrialsStarted,
)
from tunefleet_runtime.settings import StoreSettings

__all__ = [
    "DUPLICATE_KEY",
    "PlanIncompleteError",
    "StudyStatus",
    "connect_store",
    "current_revision",
    "ensure_indexes",
    "finite",
    "leaderboard",
    "list_studies",
    "missing_trials",
    "planned_trials",
    "probe_write",
    "result_states",
    "study_status",
    "trial_documents",
    "write_events",
]

DUPLICATE_KEY = 11000
Doc = dict[str, Any]


def connect_store(settings: StoreSettings, *, timeout_ms: int = 5000) -> Database[Doc]:
    client: MongoClient[Doc] = MongoClient(
        str(settings.mongodb_url),
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        tz_aware=True,
    )
    return client[settings.mongodb_database]


def ensure_indexes(db: Database[Doc]) -> None:
    # Every trial query selects one study's current revision (see `current_revision`).
    study = [("study_id", ASCENDING), ("revision", ASCENDING)]
    db.trials.create_index([*study, ("score", DESCENDING)], name="revision_leaderboard")
    db.trials.create_index(
        [*study, ("library", ASCENDING), ("score", DESCENDING)],
        name="revision_leaderboard_by_library",
    )
    db.trials.create_index([*study, ("status", ASCENDING)], name="revision_by_status")
    db.starts.create_index(study, name="revision_starts")
    db.planned.create_index([*study, ("seq", ASCENDING)], name="revision_plan")
    db.studies.create_index([("submitted_at", DESCENDING)], name="recent")


def probe_write(db: Database[Doc]) -> None:
    """Write one small document of the store's own; raises whatever the store answers a write
    with now (the collector's test of whether the store or a document is at fault)."""
    db.health.update_one({"_id": "collector"}, {"$set": {"at": time.time()}}, upsert=True)


def finite(value: Any) -> Any:
    """The value with every NaN and infinity (at any depth) replaced by None: neither JSON nor
    FerretDB has them, and a message can still carry one (`1e999` parses as infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _insert_new(db: Database[Doc], collection: str, docs: Sequence[Doc]) -> int:
    """Insert, treating an already-present _id as success; returns how many were new."""
    return _insert(db, collection, docs)[0]


def _insert(db: Database[Doc], collection: str, docs: Sequence[Doc]) -> tuple[int, list[Doc]]:
    """Insert; returns how many were new and the documents whose _id was already there."""
    if not docs:
        return 0, []
    try:
        return len(db[collection].insert_many(list(docs), ordered=False).inserted_ids), []
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        present = [docs[e["index"]] for e in errors if isinstance(e.get("index"), int)]
        return int(exc.details.get("nInserted", 0)), present


def _insert_results(db: Database[Doc], docs: Sequence[Doc]) -> int:
    new, present = _insert(db, "trials", docs)
    for doc in present:
        _merge_result(db, doc)
    return new


_RANK = {"failed": 0, "done": 1}


def _merge_result(db: Database[Doc], doc: Doc) -> None:
    """A trial that already has a result gets another (a redelivery, a rerun, a late copy of a
    superseded revision). A done result beats a failed one, then the later revision's wins;
    the result kept is in the later revision either way. Idempotent, and safe against another
    collector writing the same trial meanwhile (the write is conditional on what was read)."""
    for _ in range(10):
        stored = db.trials.find_one({"_id": doc["_id"]}, {"status": 1, "revision": 1})
        if stored is None:
            return  # never deleted; nothing sensible to merge with
        was = {"_id": doc["_id"], "status": stored["status"], "revision": stored["revision"]}
        revision = max(int(stored["revision"]), int(doc["revision"]))
        if (_RANK[doc["status"]], doc["revision"]) > (_RANK[stored["status"]], stored["revision"]):
            written = db.trials.replace_one(was, {**doc, "revision": revision}).matched_count
        elif stored["revision"] < revision:
            written = db.trials.update_one(was, {"$set": {"revision": revision}}).matched_count
        else:
            return
        if written:
            return


class PlanIncompleteError(RuntimeError):
    """A revision's registration arrived before all of its planned trials were stored (another
    collector has them in hand): try again shortly, nothing is wrong."""


def _insert_planned(db: Database[Doc], events: Sequence[TrialsPlanned]) -> int:
    """Record the planner's decisions; a trial planned again in a later revision moves to it."""
    docs = [
        {
            "_id": trial.trial_id,
            "study_id": event.study_id,
            "revision": event.revision,
            "seq": event.first + i,
            "library": trial.library,
            "params": finite(trial.params),
        }
        for event in events
        for i, trial in enumerate(event.trials)
    ]
    new, present = _insert(db, "planned", docs)
    by_revision: dict[int, list[str]] = {}
    for doc in present:
        by_revision.setdefault(int(doc["revision"]), []).append(doc["_id"])
    for revision, ids in by_revision.items():
        for first in range(0, len(ids), 1000):
            db.planned.update_many(
                {"_id": {"$in": ids[first : first + 1000]}, "revision": {"$lt": revision}},
                {"$set": {"revision": revision}},
            )
    return new


def _revise(db: Database[Doc], event: StudyRegistered) -> None:
    """Make `event.revision` the study's current one (once; a replay changes nothing).

    The results it keeps, those of the trials its plan has (same scoring, library and
    parameters), move to it, except failed ones that it runs again. Results first, the study
    last: a collector killed in between does both again on redelivery."""
    study = db.studies.find_one({"_id": event.study_id}, {"revision": 1})
    if study is None or int(study["revision"]) >= event.revision:
        return
    planned = {"study_id": event.study_id, "revision": event.revision}
    wanted = {doc["_id"] for doc in db.planned.find(planned, {"_id": 1})}
    if len(wanted) < event.n_trials:
        raise PlanIncompleteError(
            f"study {event.study_id} revision {event.revision}: {len(wanted)} of "
            f"{event.n_trials} planned trials stored"
        )
    kept = ["done"] if event.rerun_failed else ["done", "failed"]
    older = {"study_id": event.study_id, "revision": {"$lt": event.revision}}
    keep = [
        doc["_id"]
        for doc in db.trials.find({**older, "status": {"$in": kept}}, {"_id": 1})
        if doc["_id"] in wanted
    ]
    for first in range(0, len(keep), 1000):
        db.trials.update_many(
            {**older, "_id": {"$in": keep[first : first + 1000]}},
            {"$set": {"revision": event.revision}},
        )
    db.studies.update_one(
        {"_id": event.study_id, "revision": {"$lt": event.revision}},
        {
            "$set": {
                "spec": event.spec.model_dump(mode="json"),
                "n_trials": event.n_trials,
                "revision": event.revision,
                "revised_at": event.published_at,
                **_plan_counts(event),
            }
        },
    )


def _plan_counts(event: StudyRegistered) -> Doc:
    return {
        "published": event.published,
        "kept": event.kept,
        "kept_failed": event.kept_failed,
        "superseded": event.superseded,
    }


def write_events(db: Database[Doc], events: Iterable[Event]) -> dict[str, int]:
    """Store a batch idempotently; raises (and the caller must not ack) on any real failure."""
    studies: list[Doc] = []
    starts: list[Doc] = []
    results: dict[str, Doc] = {}
    control: list[StudyCancelled | StudyResumed] = []
    revisions: list[StudyRegistered] = []
    planned: list[TrialsPlanned] = []
    now = time.time()
    for event in events:
        if isinstance(event, TrialsPlanned):
            planned.append(event)
        elif isinstance(event, StudyRegistered):
            doc = finite(event.model_dump(mode="json", exclude={"rerun_failed"}))
            studies.append({"_id": event.study_id, **doc, "stored_at": now})
            if event.revision > 0:
                revisions.append(event)
        elif isinstance(event, StudyCancelled | StudyResumed):
            control.append(event)
        elif isinstance(event, TrialsStarted):
            starts.extend(
                {
                    "_id": f"{tid}:{event.revision}:{event.attempt}",
                    "study_id": event.study_id,
                    "trial_id": tid,
                    "worker": event.worker,
                    "attempt": event.attempt,
                    "started_at": event.started_at,
                    "revision": event.revision,
                }
                for tid in event.trial_ids
            )
        elif isinstance(event, TrialResult):
            # Within one batch the first result of a trial wins, as it does across batches.
            results.setdefault(
                event.trial_id,
                {"_id": event.trial_id, **finite(event.model_dump()), "stored_at": now},
            )
    # The plan first: a registration in the same batch may revise the study by it.
    counts = {
        "planned": _insert_planned(db, planned),
        "studies": _insert_new(db, "studies", studies),
        "starts": _insert_new(db, "starts", starts),
        "trials": _insert_results(db, list(results.values())),
    }
    for revision in revisions:
        _revise(db, revision)
    # In arrival order, after the inserts: a study registered in this batch exists by now.
    # Setting fields is idempotent, so a redelivered batch ends in the same state.
    for change in control:
        if isinstance(change, StudyCancelled):
            update: Doc = {
                "$set": {
                    "cancelled_at": change.cancelled_at,
                    "cancelled_by": change.by,
                    "cancel_reason": change.reason,
                }
            }
        else:
            update = {
                "$set": {"resumed_at": change.resumed_at, "resumed_by": change.by},
                "$unset": {"cancelled_at": "", "cancelled_by": "", "cancel_reason": ""},
            }
        db.studies.update_one({"_id": change.study_id}, update)
    counts["control"] = len(control)
    counts["revisions"] = len(revisions)
    return counts


def current_revision(study: Doc) -> Doc:
    """The query part that selects a study's results (and starts) of its current revision."""
    return {"study_id": study["_id"], "revision": int(study["revision"])}


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
    best_trial: Doc | None
    metric: str | None
    cancelled: bool = False
    redeliveries: int = 0  # deliveries beyond each trial's first: preemptions, crashes, restarts

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def complete(self) -> bool:
        return self.n_trials > 0 and self.finished >= self.n_trials


def study_status(db: Database[Doc], study_id: str) -> StudyStatus | None:
    study = db.studies.find_one({"_id": study_id})
    if study is None:
        return None
    current = current_revision(study)
    counts = {
        row["_id"]: row["n"]
        for row in db.trials.aggregate(
            [{"$match": current}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        )
    }
    finished = {d["_id"] for d in db.trials.find(current, {"_id": 1})}
    started: dict[str, int] = {}
    workers: set[str] = set()
    # The highest attempt seen per trial: a start event or the result may be the one that
    # survived (the other lost with a killed worker), so both count.
    attempts: dict[str, int] = {}
    for start in db.starts.find(current, {"trial_id": 1, "worker": 1, "attempt": 1}):
        tid = start["trial_id"]
        started[tid] = started.get(tid, 0) + 1
        attempts[tid] = max(attempts.get(tid, 1), int(start.get("attempt") or 1))
        workers.add(start["worker"])
    running = sum(1 for tid in started if tid not in finished)
    for doc in db.trials.find({**current, "attempts": {"$gt": 1}}, {"attempts": 1}):
        attempts[doc["_id"]] = max(attempts.get(doc["_id"], 1), int(doc["attempts"]))
    redelivered = {tid for tid, n in started.items() if n > 1} | {
        tid for tid, n in attempts.items() if n > 1
    }
    best = next(iter(_leaderboard(db, current, limit=1)), None)
    n_trials = int(study["n_trials"])
    done, failed = counts.get("done", 0), counts.get("failed", 0)
    return StudyStatus(
        study_id=study_id,
        name=study["spec"]["name"],
        n_trials=n_trials,
        done=done,
        failed=failed,
        running=running,
        queued=max(0, n_trials - done - failed - running),
        redelivered=len(redelivered),
        redeliveries=sum(n - 1 for n in attempts.values()),
        workers=len(workers),
        best_score=best["score"] if best else None,
        best_trial=best,
        metric=best["metric"] if best else study["spec"].get("metric"),
        cancelled=study.get("cancelled_at") is not None,
    )


def _study_trials(db: Database[Doc], study_id: str) -> Doc | None:
    study = db.studies.find_one({"_id": study_id}, {"revision": 1})
    return None if study is None else current_revision(study)


def leaderboard(
    db: Database[Doc], study_id: str, *, limit: int = 10, library: str | None = None
) -> list[Doc]:
    """Best trials first (scikit-learn scorers are all greater-is-better)."""
    current = _study_trials(db, study_id)
    return [] if current is None else _leaderboard(db, current, limit=limit, library=library)


def _leaderboard(
    db: Database[Doc], current: Doc, *, limit: int, library: str | None = None
) -> list[Doc]:
    query: Doc = {**current, "status": "done", "score": {"$ne": None}}
    if library is not None:
        query["library"] = library
    return list(db.trials.find(query).sort("score", DESCENDING).limit(limit))


def trial_documents(db: Database[Doc], study_id: str) -> list[Doc]:
    """The study's results in its current revision, best first."""
    current = _study_trials(db, study_id)
    return [] if current is None else list(db.trials.find(current).sort("score", DESCENDING))


def list_studies(db: Database[Doc], limit: int = 50) -> list[Doc]:
    return list(
        db.studies.find({}, {"spec.search": 0}).sort("submitted_at", DESCENDING).limit(limit)
    )


def planned_trials(db: Database[Doc], study_id: str, revision: int) -> list[str]:
    """The trial ids of the study's plan in this revision, in the planner's order."""
    query = {"study_id": study_id, "revision": revision}
    return [doc["_id"] for doc in db.planned.find(query, {"_id": 1}).sort("seq", ASCENDING)]


def result_states(db: Database[Doc], study_id: str) -> dict[str, tuple[str, int]]:
    """Every stored result of the study, of any revision: trial id -> (status, revision)."""
    return {
        doc["_id"]: (doc["status"], int(doc["revision"]))
        for doc in db.trials.find({"study_id": study_id}, {"status": 1, "revision": 1})
    }


def missing_trials(db: Database[Doc], study_id: str, revision: int) -> list[str]:
    """The planned trials of this revision that have no result, in the planner's order."""
    have = result_states(db, study_id)
    return [tid for tid in planned_trials(db, study_id, revision) if tid not in have]
