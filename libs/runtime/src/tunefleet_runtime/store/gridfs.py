"""Blobs in MongoDB (or FerretDB): bytes in a GridFS bucket (`blobdata.files` /
`blobdata.chunks`, 1 MiB chunks), which both serve, and a catalogue document per blob (`blobs`,
`_id` = the content's SHA-256) inserted only after every chunk is written: that insert is what
makes a blob visible. A second upload of the same content gets the catalogue's duplicate-key
error, which means "already stored", and deletes its own copy. A blob put with an identity
(a model's) has it in its catalogue document, where `find` looks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from bson import ObjectId
from gridfs import GridFSBucket
from gridfs.errors import NoFile
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from tunefleet_runtime.blobs import (
    CHUNK_BYTES,
    BlobError,
    BlobInfo,
    BlobKind,
    BlobStore,
    Hashing,
    MissingBlobError,
    verified,
)

__all__ = ["BUCKET", "CATALOGUE", "GridFSBlobStore"]

BUCKET = "blobdata"
CATALOGUE = "blobs"
# Chunks per round trip when reading: bounds a reader's memory (and every reply's size).
_CHUNKS_PER_BATCH = 8


class GridFSBlobStore(BlobStore):
    def __init__(self, db: Database[dict[str, Any]], max_bytes: int) -> None:
        super().__init__(max_bytes)
        self.db = db
        self._bucket = GridFSBucket(db, bucket_name=BUCKET, chunk_size_bytes=CHUNK_BYTES)

    @property
    def catalogue(self) -> Any:
        return self.db[CATALOGUE]

    def info(self, sha256: str) -> BlobInfo | None:
        doc = self.catalogue.find_one({"_id": sha256})
        return BlobInfo.from_doc(doc) if doc is not None else None

    def find(self, identity: str) -> BlobInfo | None:
        if not identity:
            return None
        found = self.catalogue.find({"identity": identity}).sort("created_at", -1).limit(1)
        return next((BlobInfo.from_doc(d) for d in found), None)

    def list(self, kind: BlobKind | None = None) -> list[BlobInfo]:
        query = {} if kind is None else {"kind": kind}
        return [BlobInfo.from_doc(d) for d in self.catalogue.find(query).sort("created_at", -1)]

    def _store(
        self,
        stream: Hashing,
        sha: str,
        size: int,
        *,
        kind: BlobKind,
        format: str,
        name: str,
        identity: str = "",
    ) -> tuple[BlobInfo, bool]:
        file_id = self._bucket.upload_from_stream(
            name or sha, stream, metadata={"sha256": sha, "kind": kind}
        )
        if stream.digest.hexdigest() != sha:
            self._bucket.delete(file_id)
            raise BlobError(f"{name or sha}: the content changed while it was uploaded")
        doc = {
            "_id": sha,
            "file_id": file_id,
            "size": size,
            "kind": kind,
            "format": format,
            "name": name,
            "created_at": time.time(),
        }
        if identity:
            doc["identity"] = identity
        try:
            self.catalogue.insert_one(doc)
        except DuplicateKeyError:
            self._bucket.delete(file_id)  # someone stored the same content first: theirs stands
            known = self.info(sha)
            assert known is not None
            return known, False
        return BlobInfo.from_doc(doc), True

    def open(self, sha256: str) -> tuple[BlobInfo, Iterator[bytes]]:
        doc = self.catalogue.find_one({"_id": sha256})
        if doc is None:
            raise MissingBlobError(f"no stored blob {sha256} (never uploaded, or deleted)")
        info = BlobInfo.from_doc(doc)
        if self.db[f"{BUCKET}.files"].find_one({"_id": doc["file_id"]}, {"_id": 1}) is None:
            raise MissingBlobError(f"blob {sha256}: its content is gone from the store")
        # Read the chunks ourselves rather than through GridOut: its cursor sets no batch size,
        # and FerretDB then answers with batches over the 48 MB wire limit (64 chunks of 1 MiB).
        cursor = (
            self.db[f"{BUCKET}.chunks"]
            .find({"files_id": doc["file_id"]}, {"n": 1, "data": 1})
            .sort("n", 1)
            .batch_size(_CHUNKS_PER_BATCH)
        )

        def chunks() -> Iterator[bytes]:
            with cursor:
                for expected, chunk_doc in enumerate(cursor):
                    if chunk_doc["n"] != expected:
                        raise BlobError(
                            f"blob {sha256}: truncated or corrupt: no chunk #{expected}"
                        )
                    yield bytes(chunk_doc["data"])

        return info, verified(info, chunks())

    def delete(self, sha256: str) -> bool:
        # The catalogue entry first, so that no reader starts on it.
        doc = self.catalogue.find_one_and_delete({"_id": sha256})
        if doc is None:
            return False
        with contextlib.suppress(NoFile):  # a half-deleted blob: the catalogue entry was the key
            self._bucket.delete(doc["file_id"])
        return True

    def prune_orphans(self, older_than_s: float = 3600) -> int:
        """GridFS content that no catalogue entry names: uploads that died half-way (chunks
        without a file document) or lost a race."""
        named = {d["file_id"] for d in self.catalogue.find({}, {"file_id": 1})}
        cutoff = time.time() - older_than_s
        chunks = self.db[f"{BUCKET}.chunks"]
        removed = 0
        for file_id in chunks.distinct("files_id"):
            if (
                isinstance(file_id, ObjectId)
                and file_id not in named
                and file_id.generation_time.timestamp() < cutoff
            ):
                self.db[f"{BUCKET}.files"].delete_one({"_id": file_id})
                chunks.delete_many({"files_id": file_id})
                removed += 1
        return removed
