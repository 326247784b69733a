"""Content-addressed blobs in the store: uploaded datasets and refitted models.

Bytes live in a GridFS bucket (`blobdata.files` / `blobdata.chunks`, 1 MiB chunks), which
MongoDB and FerretDB both serve; a blob becomes visible only when its catalogue document
(`blobs`, `_id` = the content's SHA-256) is inserted, after every chunk is written. So:

- an upload that dies half-way leaves chunks no catalogue entry points to (`prune_orphans`
  removes them), never a blob that looks whole;
- two clients uploading the same content both succeed: the second insert's duplicate-key error
  means "already stored", and its own copy is deleted;
- readers verify the hash while streaming, so a corrupt or truncated blob is an error, not data.

Everything streams in chunks: memory stays bounded whatever the size (docs/datasets.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from bson import ObjectId
from gridfs import GridFSBucket
from gridfs.errors import NoFile
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

__all__ = [
    "BUCKET",
    "CATALOGUE",
    "CHUNK_BYTES",
    "BlobError",
    "BlobInfo",
    "BlobStore",
    "BlobTooLargeError",
    "MissingBlobError",
    "sha256_of",
]

BUCKET = "blobdata"
CATALOGUE = "blobs"
CHUNK_BYTES = 1 << 20
# Chunks per round trip when reading: bounds a reader's memory (and every reply's size).
_CHUNKS_PER_BATCH = 8
BlobKind = Literal["dataset", "model"]


class BlobError(ValueError):
    """A blob cannot be stored or read as it is; the text says which and why."""


class BlobTooLargeError(BlobError):
    """Over the configured size limit (TUNEFLEET_MAX_DATASET_BYTES)."""


class MissingBlobError(BlobError):
    """No stored blob has this hash (never uploaded, or deleted)."""


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    size: int
    kind: BlobKind
    format: str
    name: str
    created_at: float

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> BlobInfo:
        return cls(
            sha256=doc["_id"],
            size=int(doc["size"]),
            kind=doc["kind"],
            format=doc["format"],
            name=doc.get("name", ""),
            created_at=float(doc["created_at"]),
        )


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


def sha256_of(path: Path, max_bytes: int | None = None) -> tuple[str, int]:
    """The file's SHA-256 and size, read in chunks; over `max_bytes` is refused before reading."""
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise BlobTooLargeError(
            f"{path}: {size:,} bytes is over the limit of {max_bytes:,} "
            "(TUNEFLEET_MAX_DATASET_BYTES)"
        )
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in _chunks(stream):
            digest.update(chunk)
    return digest.hexdigest(), size


class BlobStore:
    """Put, get, list and delete blobs by content hash."""

    def __init__(self, db: Database[dict[str, Any]], max_bytes: int) -> None:
        self.db = db
        self.max_bytes = max_bytes
        self._bucket = GridFSBucket(db, bucket_name=BUCKET, chunk_size_bytes=CHUNK_BYTES)

    @property
    def catalogue(self) -> Any:
        return self.db[CATALOGUE]

    def info(self, sha256: str) -> BlobInfo | None:
        doc = self.catalogue.find_one({"_id": sha256})
        return BlobInfo.from_doc(doc) if doc is not None else None

    def list(self, kind: BlobKind | None = None) -> list[BlobInfo]:
        query = {} if kind is None else {"kind": kind}
        return [BlobInfo.from_doc(d) for d in self.catalogue.find(query).sort("created_at", -1)]

    def put_file(
        self, path: Path, *, kind: BlobKind, format: str, name: str = ""
    ) -> tuple[BlobInfo, bool]:
        """Store the file unless its content is already stored; (info, whether it uploaded)."""
        sha, size = sha256_of(path, self.max_bytes)
        known = self.info(sha)
        if known is not None:
            return known, False
        with path.open("rb") as stream:
            return self._put(stream, sha, size, kind=kind, format=format, name=name)

    def put_bytes(
        self, data: bytes, *, kind: BlobKind, format: str, name: str = ""
    ) -> tuple[BlobInfo, bool]:
        """For what is small and already in memory (a model file)."""
        import io

        sha = hashlib.sha256(data).hexdigest()
        known = self.info(sha)
        if known is not None:
            return known, False
        return self._put(io.BytesIO(data), sha, len(data), kind=kind, format=format, name=name)

    def _put(
        self, stream: IO[bytes], sha: str, size: int, *, kind: BlobKind, format: str, name: str
    ) -> tuple[BlobInfo, bool]:
        if size > self.max_bytes:
            raise BlobTooLargeError(
                f"{name or sha}: {size:,} bytes is over the limit of {self.max_bytes:,} "
                "(TUNEFLEET_MAX_DATASET_BYTES)"
            )
        digest = hashlib.sha256()

        class _Hashing:
            # Hash what GridFS actually stores: a file changed between hashing and upload
            # must not be catalogued under the old hash.
            def read(self, n: int = -1) -> bytes:
                chunk = stream.read(n)
                digest.update(chunk)
                return chunk

        file_id = self._bucket.upload_from_stream(
            name or sha, _Hashing(), metadata={"sha256": sha, "kind": kind}
        )
        if digest.hexdigest() != sha:
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
        try:
            self.catalogue.insert_one(doc)
        except DuplicateKeyError:
            self._bucket.delete(file_id)  # someone stored the same content first: theirs stands
            known = self.info(sha)
            assert known is not None
            return known, False
        return BlobInfo.from_doc(doc), True

    def open(self, sha256: str) -> tuple[BlobInfo, Iterator[bytes]]:
        """The blob's chunks, streamed; iterating past the end verifies size and hash."""
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
            digest = hashlib.sha256()
            seen = 0
            with cursor:
                for expected, chunk_doc in enumerate(cursor):
                    if chunk_doc["n"] != expected:
                        raise BlobError(
                            f"blob {sha256}: truncated or corrupt: no chunk #{expected}"
                        )
                    chunk = bytes(chunk_doc["data"])
                    seen += len(chunk)
                    digest.update(chunk)
                    yield chunk
            if seen != info.size:
                raise BlobError(
                    f"blob {sha256}: truncated or corrupt: {seen:,} bytes stored, "
                    f"{info.size:,} expected"
                )
            if digest.hexdigest() != sha256:
                raise BlobError(f"blob {sha256}: content does not match its hash")

        return info, chunks()

    def download(self, sha256: str, dest: Path) -> BlobInfo:
        """Write the blob to `dest` (atomically: a temporary file renamed once verified)."""
        info, chunks = self.open(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{sha256[:16]}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            Path(tmp).replace(dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return info

    def read_bytes(self, sha256: str) -> bytes:
        _, chunks = self.open(sha256)
        return b"".join(chunks)

    def delete(self, sha256: str) -> bool:
        """Remove the blob: the catalogue entry first, so that no reader starts on it."""
        doc = self.catalogue.find_one_and_delete({"_id": sha256})
        if doc is None:
            return False
        with contextlib.suppress(NoFile):  # a half-deleted blob: the catalogue entry was the key
            self._bucket.delete(doc["file_id"])
        return True

    def prune_orphans(self, older_than_s: float = 3600) -> int:
        """Delete GridFS content that no catalogue entry names: uploads that died half-way
        (chunks without a file document) or lost a race. Only content older than
        `older_than_s`, so that an upload in progress is never cut short."""
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
