"""MongoDB layout, writes (the collector's and the planner's) and the queries the CLI and API run.

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
                                 the latest revision that has it, its library, parameters,
                                 position (`seq`) in the plan and, when an adaptive search
                                 decided it on a result, that trial's id (`after`)

Every result and start carries the revision it was run in; a new revision moves the results it
keeps to itself. Status, leaderboards and results read the current revision only, so trials that
a spec fix dropped (superseded) stay stored but out of sight.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from tunefleet_contract.messages import (
    Event,
    ModelStored,
    StudyCancelled,
    StudyRegistered,
    StudyResumed,
    TrialResult,
    TrialsPlanned,
    TrialsStarted,
)
from tunefleet_contract.spec import StudySpec
from tunefleet_runtime.records import (
    PlannedTrial,
    ResultState,
    StudyActivity,
    StudyRecord,
    StudyStatus,
    TrialDetail,
    TrialRecord,
    TrialStart,
)
from tunefleet_runtime.settings import StoreSettings

__all__ = [
    "DUPLICATE_KEY",
    "STORE_ERRORS",
    "MongoStore",
    "PlanIncompleteError",
    "Store",
    "connect_database",
    "connect_store",
    "ensure_indexes",
    "finite",
    "probe_write",
    "study_status",
    "write_events",
]

DUPLICATE_KEY = 11000
Doc = dict[str, Any]
# What a store that is away (or refuses) raises: callers wait and retry, or say so, without
# knowing which driver is behind the store.
STORE_ERRORS: tuple[type[BaseException], ...] = (PyMongoError,)


def connect_store(settings: StoreSettings, *, timeout_ms: int = 5000) -> Database[Doc]:
    return connect_database(
        str(settings.mongodb_url), settings.mongodb_database, timeout_ms=timeout_ms
    )


def connect_database(url: str, database: str, *, timeout_ms: int = 5000) -> Database[Doc]:
    """For processes whose store access is optional (a worker fetching uploaded datasets)."""
    client: MongoClient[Doc] = MongoClient(
        url,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        tz_aware=True,
    )
    return client[database]


def ensure_indexes(db: Database[Doc]) -> None:
    # Every trial query selects one study's current revision.
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
            **({"after": event.after} if event.after is not None else {}),
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
    expected = event.n_trials if event.planned is None else event.planned
    if len(wanted) < expected:
        raise PlanIncompleteError(
            f"study {event.study_id} revision {event.revision}: {len(wanted)} of "
            f"{expected} planned trials stored"
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


def _write_models(db: Database[Doc], models: list[ModelStored], now: float) -> int:
    """`models`, one per trial (`_id` = trial id): a stored model replaces whatever was there
    (a refit again, redelivered, after a failure); a failure never replaces a stored model."""
    written = 0
    for model in models:
        doc = {"_id": model.trial_id, **finite(model.model_dump(mode="json")), "stored_at": now}
        query: Doc = {"_id": model.trial_id}
        if model.status == "failed":
            query["status"] = {"$ne": "done"}
        try:
            db.models.replace_one(query, doc, upsert=True)
            written += 1
        except DuplicateKeyError:
            pass  # a stored model stands; the failed refit is only in the events stream
    return written


def write_events(db: Database[Doc], events: Iterable[Event]) -> dict[str, int]:
    """Store a batch idempotently; raises (and the caller must not ack) on any real failure."""
    studies: list[Doc] = []
    starts: list[Doc] = []
    results: dict[str, Doc] = {}
    control: list[StudyCancelled | StudyResumed] = []
    revisions: list[StudyRegistered] = []
    planned: list[TrialsPlanned] = []
    models: list[ModelStored] = []
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
        elif isinstance(event, ModelStored):
            models.append(event)
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
    counts["models"] = _write_models(db, models, now)
    counts["control"] = len(control)
    counts["revisions"] = len(revisions)
    return counts


def _leaderboard(
    db: Database[Doc], current: Doc, *, limit: int, library: str | None = None
) -> list[Doc]:
    query: Doc = {**current, "status": "done", "score": {"$ne": None}}
    if library is not None:
        query["library"] = library
    return list(db.trials.find(query).sort("score", DESCENDING).limit(limit))


# -- reading: the store boundary ----------------------------------------------------------------


class Store(Protocol):
    """What tunefleet keeps, as its readers and its writers see it. MongoDB is one
    implementation (`MongoStore`); `tunefleet_runtime.memstore.MemoryStore` serves unit tests.
    A new backend implements this protocol."""

    def write_events(self, events: Iterable[Event]) -> dict[str, int]:
        """Store a batch idempotently (the collector's events, the planner's decisions and the
        results they rest on); raises on any failure."""
        ...

    def study(self, study_id: str) -> StudyRecord | None: ...

    def studies(self, limit: int = 50) -> list[StudyRecord]:
        """The most recent studies, newest first."""
        ...

    def results(self, study_id: str, revision: int) -> list[TrialRecord]:
        """The study's results in this revision, best first (failed ones last)."""
        ...

    def starts(self, study_id: str, revision: int) -> list[TrialStart]: ...

    def leaderboard(
        self, study_id: str, revision: int, *, limit: int, library: str | None = None
    ) -> list[TrialRecord]:
        """The best `done` results with a score (scikit-learn scorers: greater is better)."""
        ...

    def finished_since(
        self, study_id: str, revision: int, since: float
    ) -> tuple[int, float | None]:
        """How many results of this revision finished after `since`, and when its first
        result finished (None: none yet)."""
        ...

    def planned_trials(self, study_id: str, revision: int) -> list[str]:
        """The study's trial set in this revision, in the planner's order."""
        ...

    def result_states(self, study_id: str) -> dict[str, ResultState]:
        """Every stored result of the study, of any revision, by trial id."""
        ...

    def plan(self, study_id: str) -> list[PlannedTrial]:
        """Every trial the planner decided for the study, of any revision, in its order."""
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
    if len(trial_id) < 24 and (
        len(trial_id) < 6 or not all(c in "0123456789abcdef" for c in trial_id)
    ):
        raise ValueError("give at least 6 hex digits of a trial id")


def _study_record(doc: Doc) -> StudyRecord:
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


def _trial_record(doc: Doc) -> TrialRecord:
    return TrialRecord(trial_id=doc["_id"], **{k: v for k, v in doc.items() if k in _RESULT_FIELDS})


def _model_record(doc: Doc) -> ModelStored:
    return ModelStored.model_validate({k: v for k, v in doc.items() if k != "stored_at"})


def _trial_start(doc: Doc) -> TrialStart:
    return TrialStart(
        trial_id=doc["trial_id"],
        attempt=int(doc["attempt"]),
        worker=doc["worker"],
        started_at=float(doc["started_at"]),
        revision=int(doc["revision"]),
    )


class MongoStore:
    """The store on MongoDB (or FerretDB): see the module's docstring for the layout."""

    def __init__(self, db: Database[Doc]) -> None:
        self.db = db

    @classmethod
    def connect(cls, settings: StoreSettings, *, timeout_ms: int = 5000) -> MongoStore:
        return cls(connect_store(settings, timeout_ms=timeout_ms))

    def write_events(self, events: Iterable[Event]) -> dict[str, int]:
        return write_events(self.db, events)

    def study(self, study_id: str) -> StudyRecord | None:
        doc = self.db.studies.find_one({"_id": study_id})
        return None if doc is None else _study_record(doc)

    def studies(self, limit: int = 50) -> list[StudyRecord]:
        found = self.db.studies.find().sort("submitted_at", DESCENDING).limit(limit)
        return [_study_record(doc) for doc in found]

    def results(self, study_id: str, revision: int) -> list[TrialRecord]:
        query = {"study_id": study_id, "revision": revision}
        return [_trial_record(d) for d in self.db.trials.find(query).sort("score", DESCENDING)]

    def starts(self, study_id: str, revision: int) -> list[TrialStart]:
        query = {"study_id": study_id, "revision": revision}
        return [_trial_start(doc) for doc in self.db.starts.find(query)]

    def leaderboard(
        self, study_id: str, revision: int, *, limit: int, library: str | None = None
    ) -> list[TrialRecord]:
        current = {"study_id": study_id, "revision": revision}
        return [
            _trial_record(doc)
            for doc in _leaderboard(self.db, current, limit=limit, library=library)
        ]

    def finished_since(
        self, study_id: str, revision: int, since: float
    ) -> tuple[int, float | None]:
        current = {"study_id": study_id, "revision": revision}
        recent = self.db.trials.count_documents({**current, "finished_at": {"$gt": since}})
        first = self.db.trials.find_one(current, {"finished_at": 1}, sort=[("finished_at", 1)])
        return recent, None if first is None else float(first["finished_at"])

    def planned_trials(self, study_id: str, revision: int) -> list[str]:
        query = {"study_id": study_id, "revision": revision}
        found = self.db.planned.find(query, {"_id": 1}).sort("seq", ASCENDING)
        return [doc["_id"] for doc in found]

    def result_states(self, study_id: str) -> dict[str, ResultState]:
        fields = {"status": 1, "revision": 1, "score": 1}
        return {
            doc["_id"]: ResultState(doc["status"], int(doc["revision"]), doc.get("score"))
            for doc in self.db.trials.find({"study_id": study_id}, fields)
        }

    def plan(self, study_id: str) -> list[PlannedTrial]:
        found = self.db.planned.find({"study_id": study_id}).sort("seq", ASCENDING)
        return [
            PlannedTrial(
                trial_id=doc["_id"],
                library=doc["library"],
                params=doc["params"],
                revision=int(doc["revision"]),
                after=doc.get("after"),
            )
            for doc in found
        ]

    def trial(self, trial_id: str) -> TrialDetail | None:
        check_prefix(trial_id)
        if len(trial_id) < 24:
            prefix = {"$regex": f"^{trial_id}"}
            ids = {
                d["trial_id"]
                for d in self.db.starts.find({"trial_id": prefix}, {"trial_id": 1}).limit(3)
            } | {d["_id"] for d in self.db.trials.find({"_id": prefix}, {"_id": 1}).limit(3)}
            if len(ids) > 1:
                raise ValueError(f"{trial_id} is the start of several trial ids")
            if not ids:
                return None
            trial_id = ids.pop()
        doc = self.db.trials.find_one({"_id": trial_id})
        start_docs = list(
            self.db.starts.find({"trial_id": trial_id}).sort([("revision", 1), ("attempt", 1)])
        )
        result = None if doc is None else _trial_record(doc)
        study_id = result.study_id if result else (start_docs[0]["study_id"] if start_docs else "")
        study = self.db.studies.find_one({"_id": study_id}, {"revision": 1}) if study_id else None
        return trial_detail(
            trial_id,
            result,
            [_trial_start(s) for s in start_docs],
            study_id,
            None if study is None else int(study["revision"]),
        )

    def models(self, study_id: str, trial_id: str | None = None) -> list[ModelStored]:
        query: Doc = {"study_id": study_id}
        if trial_id is not None:
            query["_id"] = trial_id
        docs = self.db.models.find(query, {"_id": 0}).sort("stored_at", DESCENDING)
        return [_model_record(doc) for doc in docs]

    def studies_using(self, sha256: str) -> list[str]:
        found = self.db.studies.find({"spec.dataset.sha256": sha256}, {"_id": 1})
        return sorted(str(d["_id"]) for d in found)
