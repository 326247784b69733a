"""The whole `Store` protocol in one process's memory: the documents of `store.documents` in
dictionaries, written by the same rules (`store.rules`) as MongoDB's, read back as the same
records. For unit tests of what reads or writes the store, and for the conformance suite that
holds every backend to one contract; a second backend starts from here."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from tunefleet_contract.messages import (
    Event,
    ModelStored,
    StudyCancelled,
    StudyRegistered,
    StudyResumed,
)
from tunefleet_contract.search.views import scored
from tunefleet_runtime import blobs
from tunefleet_runtime.blobs import BlobInfo, BlobKind
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
from tunefleet_runtime.store import documents, rules
from tunefleet_runtime.store.base import CURVES_SAMPLE, Store, check_prefix, trial_detail
from tunefleet_runtime.store.documents import Doc, ran_to_their_end

__all__ = ["MemoryBlobStore", "MemoryStore"]


class MemoryStore:
    """Collections of documents by `_id`. Thread-safe: one lock around every write and read."""

    def __init__(self) -> None:
        self._collections: dict[str, dict[str, Doc]] = {}
        self._lock = threading.RLock()

    def _docs(self, collection: str) -> dict[str, Doc]:
        return self._collections.setdefault(collection, {})

    def _find(self, collection: str, **match: Any) -> list[Doc]:
        with self._lock:
            return [
                dict(doc)
                for doc in self._docs(collection).values()
                if all(doc.get(k) == v for k, v in match.items())
            ]

    def put_study(self, record: StudyRecord) -> None:
        """A study as if the collector had registered it (for tests that start there)."""
        with self._lock:
            self._docs("studies")[record.study_id] = {
                "_id": record.study_id,
                "spec": record.spec.model_dump(mode="json"),
                "n_trials": record.n_trials,
                "revision": record.revision,
                "submitted_at": record.submitted_at,
                "cancelled_at": record.cancelled_at,
                "cancelled_by": record.cancelled_by,
                "cancel_reason": record.cancel_reason,
                "published": record.published,
                "kept": record.kept,
                "kept_failed": record.kept_failed,
                "superseded": record.superseded,
            }

    # -- writing -----------------------------------------------------------------------------

    def prepare(self) -> None:
        return None  # nothing to index

    def write_events(self, events: Iterable[Event]) -> dict[str, int]:
        with self._lock:
            return rules.apply(self, events)

    def probe_write(self) -> None:
        with self._lock:
            self._docs("health")["collector"] = {"_id": "collector", "at": time.time()}

    def take_turn(self, role: str, holder: str) -> str | None:
        with self._lock:
            turns = self._docs("turns")
            before = turns.get(role)
            turns[role] = {"_id": role, "holder": holder, "at": time.time()}
        return None if before is None else str(before["holder"])

    def _insert(self, collection: str, docs: list[Doc]) -> tuple[int, list[tuple[Doc, Doc]]]:
        """Insert; how many were new, and (stored, given) for each whose _id was there."""
        stored = self._docs(collection)
        new, present = 0, []
        for doc in docs:
            known = stored.get(doc["_id"])
            if known is None:
                stored[doc["_id"]] = dict(doc)
                new += 1
            else:
                present.append((known, doc))
        return new, present

    def insert_new(self, collection: str, docs: list[Doc]) -> int:
        return self._insert(collection, docs)[0]

    def insert_planned(self, docs: list[Doc]) -> int:
        new, present = self._insert("planned", docs)
        for known, doc in present:
            known["revision"] = max(int(known["revision"]), int(doc["revision"]))
        return new

    def insert_results(self, docs: list[Doc]) -> int:
        new, present = self._insert("trials", docs)
        for known, doc in present:
            revision = max(int(known["revision"]), int(doc["revision"]))
            match rules.merge(known, doc):
                case rules.Merge.REPLACE:
                    self._docs("trials")[doc["_id"]] = {**doc, "revision": revision}
                case rules.Merge.MOVE:
                    known["revision"] = revision
                    known["stored_at"] = doc["stored_at"]
                case rules.Merge.KEEP:
                    pass
        return new

    def revise(self, event: StudyRegistered) -> None:
        study = self._docs("studies").get(event.study_id)
        if study is None or int(study["revision"]) >= event.revision:
            return
        wanted = {
            doc["_id"]
            for doc in self._docs("planned").values()
            if doc["study_id"] == event.study_id and doc["revision"] == event.revision
        }
        rules.check_plan(event, len(wanted))
        kept = rules.kept_statuses(event)
        for doc in self._docs("trials").values():
            if (
                doc["study_id"] == event.study_id
                and int(doc["revision"]) < event.revision
                and doc["status"] in kept
                and doc["_id"] in wanted
            ):
                doc["revision"] = event.revision
        study.update(rules.revised_fields(event))

    def control(self, change: StudyCancelled | StudyResumed) -> None:
        study = self._docs("studies").get(change.study_id)
        if study is None:
            return
        fields, removed = rules.control_fields(change)
        study.update(fields)
        for name in removed:
            study.pop(name, None)

    def write_model(self, model: ModelStored, now: float) -> bool:
        stored = self._docs("models")
        known = stored.get(model.trial_id)
        if not rules.model_replaces(None if known is None else known.get("status"), model):
            return False
        stored[model.trial_id] = documents.model_doc(model, now)
        return True

    # -- reading -----------------------------------------------------------------------------

    def study(self, study_id: str) -> StudyRecord | None:
        found = self._find("studies", _id=study_id)
        return documents.study_record(found[0]) if found else None

    def studies(self, limit: int = 50) -> list[StudyRecord]:
        found = sorted(self._find("studies"), key=lambda d: -float(d["submitted_at"]))
        return [documents.study_record(doc) for doc in found[:limit]]

    def _results(self, study_id: str, revision: int) -> list[TrialRecord]:
        found = [documents.trial_record(d) for d in self._find("trials", study_id=study_id)]
        current = [r for r in found if r.revision == revision]
        # Best first; a result without a score after every scored one (as MongoDB sorts null).
        return sorted(current, key=lambda r: (r.score is None, -(r.score or 0.0)))

    def results(self, study_id: str, revision: int) -> list[TrialRecord]:
        return self._results(study_id, revision)

    def results_since(
        self, study_id: str, revision: int, since: float
    ) -> tuple[list[TrialRecord], float | None]:
        found = [
            d
            for d in self._find("trials", study_id=study_id, revision=revision)
            if float(d["stored_at"]) >= since
        ]
        latest = max((float(d["stored_at"]) for d in found), default=None)
        return [documents.trial_record(d) for d in found], latest

    def results_of(
        self, study_id: str, revision: int, trial_ids: Collection[str]
    ) -> list[TrialRecord]:
        with self._lock:
            trials = self._docs("trials")
            found = [dict(trials[t]) for t in set(trial_ids) if t in trials]
        return [
            documents.trial_record(d)
            for d in found
            if d["study_id"] == study_id and d["revision"] == revision
        ]

    def starts(self, study_id: str, revision: int) -> list[TrialStart]:
        return [
            documents.trial_start(doc)
            for doc in self._find("starts", study_id=study_id)
            if doc["revision"] == revision
        ]

    def leaderboard(
        self, study_id: str, revision: int, *, limit: int, library: str | None = None
    ) -> list[TrialRecord]:
        done = [
            r
            for r in self._results(study_id, revision)
            if scored(r.status, r.score) is not None and library in (None, r.library)
        ]
        return done[:limit]

    def finished_curves(
        self, study_id: str, revision: int, library: str, *, limit: int = CURVES_SAMPLE
    ) -> list[Doc]:
        done = sorted(
            (
                r
                for r in self._results(study_id, revision)
                if r.library == library and r.status == "done"
            ),
            key=lambda r: r.finished_at,
            reverse=True,
        )
        return ran_to_their_end(r.early_stopping for r in done)[:limit]

    def finished_since(
        self, study_id: str, revision: int, since: float
    ) -> tuple[int, float | None]:
        finished = [r.finished_at for r in self._results(study_id, revision)]
        return sum(1 for t in finished if t > since), min(finished, default=None)

    def _plan(self, study_id: str) -> list[Doc]:
        return sorted(self._find("planned", study_id=study_id), key=lambda d: int(d["seq"]))

    def fold_checkpoints(
        self, study_id: str, revision: int, trial_ids: Collection[str], folds: int
    ) -> list[FoldRecord]:
        wanted = {documents.fold_id(t, revision, f) for t in trial_ids for f in range(folds)}
        with self._lock:
            found = [
                dict(doc)
                for key, doc in self._docs("folds").items()
                if key in wanted and doc["study_id"] == study_id and doc["folds"] == folds
            ]
        return [documents.fold_record(doc) for doc in found]

    def round_checkpoints(
        self, study_id: str, revision: int, trial_ids: Collection[str], folds: int
    ) -> list[RoundRecord]:
        wanted = set(trial_ids)
        with self._lock:
            found = [
                dict(doc)
                for doc in self._docs("rounds").values()
                if doc["trial_id"] in wanted
                and (doc["study_id"], doc["revision"], doc["folds"]) == (study_id, revision, folds)
            ]
        return [documents.round_record(doc) for doc in found]

    def planned_trials(self, study_id: str, revision: int) -> list[str]:
        return [doc["_id"] for doc in self._plan(study_id) if doc["revision"] == revision]

    def result_states(self, study_id: str) -> dict[str, ResultState]:
        return {
            doc["_id"]: ResultState(doc["status"], int(doc["revision"]), doc.get("score"))
            for doc in self._find("trials", study_id=study_id)
        }

    def plan(self, study_id: str, trial_ids: Collection[str] | None = None) -> list[PlannedTrial]:
        return [
            documents.planned_trial(doc)
            for doc in self._plan(study_id)
            if trial_ids is None or doc["_id"] in trial_ids
        ]

    def trial(self, trial_id: str) -> TrialDetail | None:
        check_prefix(trial_id)
        with self._lock:
            known = set(self._docs("trials")) | {
                doc["trial_id"] for doc in self._docs("starts").values()
            }
        ids = {tid for tid in known if tid.startswith(trial_id)}
        if len(ids) > 1:
            raise ValueError(f"{trial_id} is the start of several trial ids")
        if not ids:
            return None
        tid = ids.pop()
        docs = self._find("trials", _id=tid)
        result = documents.trial_record(docs[0]) if docs else None
        starts = sorted(
            (documents.trial_start(doc) for doc in self._find("starts", trial_id=tid)),
            key=lambda s: (s.revision, s.attempt),
        )
        study_id = result.study_id if result else self._find("starts", trial_id=tid)[0]["study_id"]
        study = self.study(study_id)
        return trial_detail(tid, result, starts, study_id, study.revision if study else None)

    def models(self, study_id: str, trial_id: str | None = None) -> list[ModelStored]:
        found = [
            doc
            for doc in self._find("models", study_id=study_id)
            if trial_id is None or doc["_id"] == trial_id
        ]
        found.sort(key=lambda d: -float(d["stored_at"]))
        return [documents.model_record(doc) for doc in found]

    def studies_using(self, sha256: str) -> list[str]:
        return sorted(
            doc["_id"]
            for doc in self._find("studies")
            if (doc["spec"].get("dataset") or {}).get("sha256") == sha256
        )

    def model_blobs(self) -> set[str]:
        return {
            str(doc["sha256"])
            for doc in self._find("models")
            if doc.get("status") == "done" and doc.get("sha256")
        }


class MemoryBlobStore(blobs.BlobStore):
    """Blobs in memory. A blob is stored whole or not at all, so no upload leaves anything
    behind to prune."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self._blobs: dict[str, tuple[BlobInfo, bytes]] = {}
        self._lock = threading.Lock()

    def info(self, sha256: str) -> BlobInfo | None:
        with self._lock:
            found = self._blobs.get(sha256)
        return found[0] if found else None

    def find(self, identity: str) -> BlobInfo | None:
        with self._lock:
            found = [
                info for info, _ in self._blobs.values() if identity and info.identity == identity
            ]
        return max(found, key=lambda info: info.created_at, default=None)

    def list(self, kind: BlobKind | None = None) -> list[BlobInfo]:
        with self._lock:
            found = [info for info, _ in self._blobs.values() if kind in (None, info.kind)]
        return sorted(found, key=lambda info: -info.created_at)

    def _store(
        self,
        stream: blobs.Hashing,
        sha: str,
        size: int,
        *,
        kind: BlobKind,
        format: str,
        name: str,
        identity: str = "",
    ) -> tuple[BlobInfo, bool]:
        data = b"".join(iter(lambda: stream.read(blobs.CHUNK_BYTES), b""))
        if stream.digest.hexdigest() != sha:
            raise blobs.BlobError(f"{name or sha}: the content changed while it was uploaded")
        info = BlobInfo(sha, len(data), kind, format, name, time.time(), identity)
        with self._lock:
            if sha in self._blobs:
                return self._blobs[sha][0], False  # stored first by someone else: theirs
            self._blobs[sha] = (info, data)
        return info, True

    def open(self, sha256: str) -> tuple[BlobInfo, Iterator[bytes]]:
        with self._lock:
            found = self._blobs.get(sha256)
        if found is None:
            raise blobs.MissingBlobError(f"no stored blob {sha256} (never uploaded, or deleted)")
        info, data = found
        chunks = (data[i : i + blobs.CHUNK_BYTES] for i in range(0, len(data), blobs.CHUNK_BYTES))
        return info, blobs.verified(info, chunks)

    def delete(self, sha256: str) -> bool:
        with self._lock:
            return self._blobs.pop(sha256, None) is not None

    def prune_orphans(self, older_than_s: float = 3600) -> int:
        return 0


def _implements_the_protocol(store: MemoryStore) -> Store:
    return store  # mypy checks that MemoryStore is a Store
