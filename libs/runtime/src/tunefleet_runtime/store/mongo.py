"""The store on MongoDB (or FerretDB): the layout of `store.documents`, the rules of
`store.rules`, applied with conditional writes so that two writers of one event (two
collectors, or a collector and the planner) end in one document.

Written to work on MongoDB and FerretDB alike: no transactions, `$group` with `$sum` only,
best scores by `$sort` + `$limit`, no NaN, no nested arrays, plain keys. Every read selects the
study's current revision where it should, so that superseded trials stay stored but out of
sight.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError
from tunefleet_contract.messages import (
    Event,
    ModelStored,
    StudyCancelled,
    StudyRegistered,
    StudyResumed,
)
from tunefleet_runtime.records import (
    FoldRecord,
    PlannedTrial,
    ResultState,
    RoundRecord,
    StudyRecord,
    TrialDetail,
    TrialRecord,
    TrialStart,
)
from tunefleet_runtime.settings import StoreSettings
from tunefleet_runtime.store.base import CURVES_SAMPLE, check_prefix, trial_detail
from tunefleet_runtime.store.documents import (
    Doc,
    fold_id,
    fold_record,
    model_doc,
    model_record,
    planned_trial,
    ran_to_their_end,
    round_record,
    study_record,
    trial_record,
    trial_start,
)
from tunefleet_runtime.store.rules import (
    Merge,
    apply,
    check_plan,
    control_fields,
    kept_statuses,
    merge,
    model_replaces,
    revised_fields,
)

__all__ = ["DUPLICATE_KEY", "MongoStore", "connect_database", "connect_store"]

DUPLICATE_KEY = 11000
# Ids per `$in` query: bounds every query document, whatever a plan's size.
_IDS_PER_QUERY = 1000
# Up to this many trials are looked up one by one (`results_of`), more with `$in`.
_BY_ONE = 200


def connect_database(url: str, database: str, *, timeout_s: float = 10.0) -> Database[Doc]:
    """A client whose every wait is bounded by `timeout_s`: choosing the server, connecting,
    and each read from its socket. Without `socketTimeoutMS` a request the store never answers
    (a stopped process, a hung disk, a connection lost without a reset) blocks for good; with
    it, the call fails with a `STORE_ERRORS` error like any outage, and is retried. A run of
    calls that must end in time as a whole (the collector's batch, the planner's handling of
    one message) is bounded by `store.bounded` on top."""
    timeout_ms = max(1, round(timeout_s * 1000))
    client: MongoClient[Doc] = MongoClient(
        url,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=timeout_ms,
        tz_aware=True,
    )
    return client[database]


def connect_store(settings: StoreSettings) -> Database[Doc]:
    """The settings' database itself (tests and benchmarks that read documents)."""
    return connect_database(
        str(settings.mongodb_url),
        settings.mongodb_database,
        timeout_s=settings.tunefleet_store_timeout_s,
    )


def _chunks(ids: Sequence[Any]) -> Iterable[list[Any]]:
    for first in range(0, len(ids), _IDS_PER_QUERY):
        yield list(ids[first : first + _IDS_PER_QUERY])


class MongoStore:
    """The `Store` protocol on one MongoDB database."""

    def __init__(self, db: Database[Doc]) -> None:
        self.db = db

    @classmethod
    def connect(cls, settings: StoreSettings) -> MongoStore:
        return cls(connect_store(settings))

    # -- writing -----------------------------------------------------------------------------

    def prepare(self) -> None:
        # Every trial query selects one study's current revision.
        study = [("study_id", ASCENDING), ("revision", ASCENDING)]
        trials = self.db.trials
        trials.create_index([*study, ("score", DESCENDING)], name="revision_leaderboard")
        trials.create_index(
            [*study, ("library", ASCENDING), ("score", DESCENDING)],
            name="revision_leaderboard_by_library",
        )
        trials.create_index([*study, ("status", ASCENDING)], name="revision_by_status")
        # What the dashboard reads after it has read a study once (`results_since`).
        trials.create_index([*study, ("stored_at", ASCENDING)], name="revision_stored")
        self.db.starts.create_index(study, name="revision_starts")
        self.db.rounds.create_index(study, name="revision_rounds")
        self.db.planned.create_index([*study, ("seq", ASCENDING)], name="revision_plan")
        self.db.studies.create_index([("submitted_at", DESCENDING)], name="recent")

    def write_events(self, events: Iterable[Event]) -> dict[str, int]:
        return apply(self, events)

    def probe_write(self) -> None:
        self.db.health.update_one({"_id": "collector"}, {"$set": {"at": time.time()}}, upsert=True)

    def take_turn(self, role: str, holder: str) -> str | None:
        before = self.db.turns.find_one_and_update(
            {"_id": role}, {"$set": {"holder": holder, "at": time.time()}}, upsert=True
        )
        return None if before is None else str(before["holder"])

    def _insert(self, collection: str, docs: Sequence[Doc]) -> tuple[int, list[Doc]]:
        """Insert; how many were new, and the documents whose _id was already there."""
        if not docs:
            return 0, []
        try:
            return len(self.db[collection].insert_many(list(docs), ordered=False).inserted_ids), []
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            present = [docs[e["index"]] for e in errors if isinstance(e.get("index"), int)]
            return int(exc.details.get("nInserted", 0)), present

    def insert_new(self, collection: str, docs: list[Doc]) -> int:
        return self._insert(collection, docs)[0]

    def insert_planned(self, docs: list[Doc]) -> int:
        new, present = self._insert("planned", docs)
        by_revision: dict[int, list[str]] = {}
        for doc in present:
            by_revision.setdefault(int(doc["revision"]), []).append(doc["_id"])
        for revision, ids in by_revision.items():
            for chunk in _chunks(ids):
                self.db.planned.update_many(
                    {"_id": {"$in": chunk}, "revision": {"$lt": revision}},
                    {"$set": {"revision": revision}},
                )
        return new

    def insert_results(self, docs: list[Doc]) -> int:
        new, present = self._insert("trials", docs)
        for doc in present:
            self._merge_result(doc)
        return new

    def _merge_result(self, doc: Doc) -> None:
        # Conditional on what was read, so that another writer merging the same trial
        # meanwhile makes this one read again rather than overwrite it.
        for _ in range(10):
            stored = self.db.trials.find_one({"_id": doc["_id"]}, {"status": 1, "revision": 1})
            if stored is None:
                return  # never deleted; nothing sensible to merge with
            was = {"_id": doc["_id"], "status": stored["status"], "revision": stored["revision"]}
            revision = max(int(stored["revision"]), int(doc["revision"]))
            match merge(stored, doc):
                case Merge.REPLACE:
                    written = self.db.trials.replace_one(was, {**doc, "revision": revision})
                case Merge.MOVE:
                    # Stored anew in that revision, for its readers (`results_since`).
                    moved = {"revision": revision, "stored_at": doc["stored_at"]}
                    written = self.db.trials.update_one(was, {"$set": moved})
                case Merge.KEEP:
                    return
            if written.matched_count:
                return

    def revise(self, event: StudyRegistered) -> None:
        # Results first, the study last: a collector killed in between does both again on
        # redelivery.
        study = self.db.studies.find_one({"_id": event.study_id}, {"revision": 1})
        if study is None or int(study["revision"]) >= event.revision:
            return
        planned = {"study_id": event.study_id, "revision": event.revision}
        wanted = {doc["_id"] for doc in self.db.planned.find(planned, {"_id": 1})}
        check_plan(event, len(wanted))
        older = {"study_id": event.study_id, "revision": {"$lt": event.revision}}
        kept = {**older, "status": {"$in": list(kept_statuses(event))}}
        keep = [doc["_id"] for doc in self.db.trials.find(kept, {"_id": 1}) if doc["_id"] in wanted]
        for chunk in _chunks(keep):
            self.db.trials.update_many(
                {**older, "_id": {"$in": chunk}}, {"$set": {"revision": event.revision}}
            )
        self.db.studies.update_one(
            {"_id": event.study_id, "revision": {"$lt": event.revision}},
            {"$set": revised_fields(event)},
        )

    def control(self, change: StudyCancelled | StudyResumed) -> None:
        fields, removed = control_fields(change)
        update: Doc = {"$set": fields}
        if removed:
            update["$unset"] = dict.fromkeys(removed, "")
        self.db.studies.update_one({"_id": change.study_id}, update)

    def write_model(self, model: ModelStored, now: float) -> bool:
        query: Doc = {"_id": model.trial_id}
        if not model_replaces("done", model):
            query["status"] = {"$ne": "done"}
        try:
            self.db.models.replace_one(query, model_doc(model, now), upsert=True)
        except DuplicateKeyError:
            return False  # a stored model stands; the failed refit is only in the events
        return True

    # -- reading -----------------------------------------------------------------------------

    def study(self, study_id: str) -> StudyRecord | None:
        doc = self.db.studies.find_one({"_id": study_id})
        return None if doc is None else study_record(doc)

    def studies(self, limit: int = 50) -> list[StudyRecord]:
        found = self.db.studies.find().sort("submitted_at", DESCENDING).limit(limit)
        return [study_record(doc) for doc in found]

    def results(self, study_id: str, revision: int) -> list[TrialRecord]:
        query = {"study_id": study_id, "revision": revision}
        return [trial_record(d) for d in self.db.trials.find(query).sort("score", DESCENDING)]

    def results_since(
        self, study_id: str, revision: int, since: float
    ) -> tuple[list[TrialRecord], float | None]:
        # No sort: a server that cannot sort by an index (FerretDB) would sort them all first.
        query = {"study_id": study_id, "revision": revision, "stored_at": {"$gte": since}}
        records, latest = [], None
        for doc in self.db.trials.find(query, batch_size=10_000):
            records.append(trial_record(doc))
            stored = float(doc.get("stored_at") or 0.0)
            latest = stored if latest is None else max(latest, stored)
        return records, latest

    def results_of(
        self, study_id: str, revision: int, trial_ids: Collection[str]
    ) -> list[TrialRecord]:
        ids = sorted(set(trial_ids))
        if len(ids) <= _BY_ONE:
            # One `_id` at a time: the primary key, which every server looks up directly
            # (FerretDB on SQLite scans for an `$in`).
            found = [self.db.trials.find_one({"_id": tid}) for tid in ids]
        else:
            found = [
                d for chunk in _chunks(ids) for d in self.db.trials.find({"_id": {"$in": chunk}})
            ]
        return [
            trial_record(doc)
            for doc in found
            if doc is not None and doc["study_id"] == study_id and doc["revision"] == revision
        ]

    def starts(self, study_id: str, revision: int) -> list[TrialStart]:
        query = {"study_id": study_id, "revision": revision}
        return [trial_start(doc) for doc in self.db.starts.find(query)]

    def leaderboard(
        self, study_id: str, revision: int, *, limit: int, library: str | None = None
    ) -> list[TrialRecord]:
        query: Doc = {
            "study_id": study_id,
            "revision": revision,
            "status": "done",
            "score": {"$ne": None},
        }
        if library is not None:
            query["library"] = library
        found = self.db.trials.find(query).sort("score", DESCENDING).limit(limit)
        return [trial_record(doc) for doc in found]

    def finished_curves(
        self, study_id: str, revision: int, library: str, *, limit: int = CURVES_SAMPLE
    ) -> list[Doc]:
        query = {
            "study_id": study_id,
            "revision": revision,
            "library": library,
            "status": "done",
            "early_stopping.stopped_by": {"$ne": "median"},
        }
        found = (
            self.db.trials.find(query, {"early_stopping": 1})
            .sort("finished_at", DESCENDING)
            .limit(limit)
        )
        return ran_to_their_end(doc.get("early_stopping") for doc in found)

    def finished_since(
        self, study_id: str, revision: int, since: float
    ) -> tuple[int, float | None]:
        current = {"study_id": study_id, "revision": revision}
        recent = self.db.trials.count_documents({**current, "finished_at": {"$gt": since}})
        first = self.db.trials.find_one(current, {"finished_at": 1}, sort=[("finished_at", 1)])
        return recent, None if first is None else float(first["finished_at"])

    def fold_checkpoints(
        self, study_id: str, revision: int, trial_ids: Collection[str], folds: int
    ) -> list[FoldRecord]:
        # By _id (trial:revision:fold): the primary index, no index of its own to keep.
        ids = [fold_id(t, revision, f) for t in sorted(trial_ids) for f in range(folds)]
        return [
            fold_record(doc)
            for chunk in _chunks(ids)
            for doc in self.db.folds.find({"_id": {"$in": chunk}, "study_id": study_id})
            if int(doc["folds"]) == folds
        ]

    def round_checkpoints(
        self, study_id: str, revision: int, trial_ids: Collection[str], folds: int
    ) -> list[RoundRecord]:
        query = {"study_id": study_id, "revision": revision, "folds": folds}
        return [
            round_record(doc)
            for chunk in _chunks(sorted(trial_ids))
            for doc in self.db.rounds.find({**query, "trial_id": {"$in": chunk}})
        ]

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

    def plan(self, study_id: str, trial_ids: Collection[str] | None = None) -> list[PlannedTrial]:
        if trial_ids is None:
            found = self.db.planned.find({"study_id": study_id}).sort("seq", ASCENDING)
            return [planned_trial(doc) for doc in found]
        docs = [
            doc
            for chunk in _chunks(list(trial_ids))
            for doc in self.db.planned.find({"study_id": study_id, "_id": {"$in": chunk}})
        ]
        return [planned_trial(doc) for doc in sorted(docs, key=lambda d: d["seq"])]

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
        result = None if doc is None else trial_record(doc)
        study_id = result.study_id if result else (start_docs[0]["study_id"] if start_docs else "")
        study = self.db.studies.find_one({"_id": study_id}, {"revision": 1}) if study_id else None
        return trial_detail(
            trial_id,
            result,
            [trial_start(s) for s in start_docs],
            study_id,
            None if study is None else int(study["revision"]),
        )

    def models(self, study_id: str, trial_id: str | None = None) -> list[ModelStored]:
        query: Doc = {"study_id": study_id}
        if trial_id is not None:
            query["_id"] = trial_id
        docs = self.db.models.find(query).sort("stored_at", DESCENDING)
        return [model_record(doc) for doc in docs]

    def studies_using(self, sha256: str) -> list[str]:
        found = self.db.studies.find({"spec.dataset.sha256": sha256}, {"_id": 1})
        return sorted(str(d["_id"]) for d in found)

    def model_blobs(self) -> set[str]:
        found = self.db.models.find({"status": "done"}, {"sha256": 1, "_id": 0})
        return {str(d["sha256"]) for d in found if d.get("sha256")}
