"""Content-addressed blobs: uploaded datasets and refitted models, kept beside the store.

`BlobStore` is the boundary: put, get, list and delete blobs by the SHA-256 of their content.
What every backend shares is here (the size limit, hashing what is stored, verifying what is
read, downloading atomically); a backend stores and streams the bytes (`GridFSBlobStore` in
MongoDB/FerretDB, `MemoryBlobStore` in memory; `open_blobs` picks one from the settings).
Every backend keeps the same promises, which the conformance suite checks:

- a blob becomes visible only once its content is whole: an upload that dies half-way leaves
  nothing a reader can open (`prune_orphans` removes what it left);
- two clients uploading the same content both succeed, and it is stored once;
- readers verify the hash while streaming, so a corrupt or truncated blob is an error, not data;
- a blob may also carry an `identity`, what it is besides its bytes (a model: the trial, the
  library and its version, the data it was trained on), and `find` looks it up by that: a
  library whose files embed a random id or a timestamp (CatBoost's `.cbm`) writes new bytes for
  the same model every time, so content alone cannot tell that a model is already stored.

Everything streams in chunks: memory stays bounded whatever the size (docs/datasets.md).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

__all__ = [
    "CHUNK_BYTES",
    "BlobError",
    "BlobInfo",
    "BlobKind",
    "BlobStore",
    "BlobTooLargeError",
    "MissingBlobError",
    "check_size",
    "sha256_of",
]

CHUNK_BYTES = 1 << 20
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
    identity: str = ""

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> BlobInfo:
        return cls(
            sha256=doc["_id"],
            size=int(doc["size"]),
            kind=doc["kind"],
            format=doc["format"],
            name=doc.get("name", ""),
            created_at=float(doc["created_at"]),
            identity=doc.get("identity", ""),
        )


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


def check_size(size: int, max_bytes: int, name: str) -> None:
    """Refuse `size` bytes over `max_bytes`, naming the blob as the user knows it."""
    if size > max_bytes:
        raise BlobTooLargeError(
            f"{name}: {size:,} bytes is over the limit of {max_bytes:,} "
            "(TUNEFLEET_MAX_DATASET_BYTES)"
        )


def sha256_of(path: Path, max_bytes: int | None = None, name: str = "") -> tuple[str, int]:
    """The file's SHA-256 and size, read in chunks; over `max_bytes` is refused before reading
    (the error names `name`, by default the path)."""
    size = path.stat().st_size
    if max_bytes is not None:
        check_size(size, max_bytes, name or str(path))
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in _chunks(stream):
            digest.update(chunk)
    return digest.hexdigest(), size


class Hashing:
    """A stream that hashes what is read from it: a backend hashes what it actually stores, so
    that a file changed between hashing and upload is not catalogued under the old hash."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        chunk = self._stream.read(n)
        self.digest.update(chunk)
        return chunk


def verified(info: BlobInfo, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The chunks as read, then (past the last one) a check of the size and the hash."""
    digest = hashlib.sha256()
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        digest.update(chunk)
        yield chunk
    if seen != info.size:
        raise BlobError(
            f"blob {info.sha256}: truncated or corrupt: {seen:,} bytes stored, "
            f"{info.size:,} expected"
        )
    if digest.hexdigest() != info.sha256:
        raise BlobError(f"blob {info.sha256}: content does not match its hash")


class BlobStore(ABC):
    """Put, get, list and delete blobs by content hash (see the module's docstring)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    @abstractmethod
    def info(self, sha256: str) -> BlobInfo | None: ...

    @abstractmethod
    def find(self, identity: str) -> BlobInfo | None:
        """The newest blob stored under this identity (`put_bytes(..., identity=)`), if any."""

    @abstractmethod
    def list(self, kind: BlobKind | None = None) -> list[BlobInfo]:
        """The stored blobs (of one kind), newest first."""

    @abstractmethod
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
        """Store the content read from `stream` (it hashes as it is read) under `sha`,
        unless it does not hash to `sha` (`BlobError`), or someone stored it first (then
        theirs stands: `(info, False)`)."""

    @abstractmethod
    def open(self, sha256: str) -> tuple[BlobInfo, Iterator[bytes]]:
        """The blob's chunks, streamed; iterating past the end verifies size and hash
        (`verified`)."""

    @abstractmethod
    def delete(self, sha256: str) -> bool:
        """Remove the blob (False: there was none); a reader never starts on half of one."""

    @abstractmethod
    def prune_orphans(self, older_than_s: float = 3600) -> int:
        """Remove what uploads that died half-way left, older than `older_than_s` (so that an
        upload in progress is never cut short); how many."""

    def put_file(
        self, path: Path, *, kind: BlobKind, format: str, name: str = ""
    ) -> tuple[BlobInfo, bool]:
        """Store the file unless its content is already stored; (info, whether it uploaded)."""
        sha, size = sha256_of(path, self.max_bytes, name)
        known = self.info(sha)
        if known is not None:
            return known, False
        with path.open("rb") as stream:
            return self._put(stream, sha, size, kind=kind, format=format, name=name)

    def put_bytes(
        self, data: bytes, *, kind: BlobKind, format: str, name: str = "", identity: str = ""
    ) -> tuple[BlobInfo, bool]:
        """For what is small and already in memory (a model file). With an `identity`, the
        bytes are catalogued under it too (`find`), unless the same content is already stored
        (then that blob stands, as it is)."""
        sha = hashlib.sha256(data).hexdigest()
        known = self.info(sha)
        if known is not None:
            return known, False
        return self._put(
            io.BytesIO(data), sha, len(data), kind=kind, format=format, name=name, identity=identity
        )

    def _put(
        self,
        stream: IO[bytes],
        sha: str,
        size: int,
        *,
        kind: BlobKind,
        format: str,
        name: str,
        identity: str = "",
    ) -> tuple[BlobInfo, bool]:
        check_size(size, self.max_bytes, name or sha)
        return self._store(
            Hashing(stream), sha, size, kind=kind, format=format, name=name, identity=identity
        )

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
