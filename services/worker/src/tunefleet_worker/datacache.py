"""Uploaded datasets on the worker's disk: fetched once, verified, kept within a size bound.

A fetched blob is written to a temporary file, its SHA-256 checked as it streams in, and renamed
to `<sha256>.<format>` only when it matches: a file under that name is always whole and right,
so other worker processes on the node (the same cache directory) use it without fetching again.
Least recently used files are evicted when the total would exceed the bound; the file in use
by this process is never evicted under it (pandas has read it already, see `datasets`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from tunefleet_contract.spec import UploadDataset
from tunefleet_runtime.blobs import BlobError, BlobStore, MissingBlobError

__all__ = ["DataCache"]


class DataCache:
    def __init__(self, root: Path, max_bytes: int, store: Callable[[], BlobStore] | None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        # Built on first use: a worker that never sees an uploaded dataset never connects.
        self._store_factory = store
        self._store: BlobStore | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def store(self) -> BlobStore:
        """The blob store (refits write their models there)."""
        if self._store is None:
            if self._store_factory is None:
                raise BlobError("uploaded datasets need the store: this worker has no MONGODB_URL")
            self._store = self._store_factory()
        return self._store

    def path(self, dataset: UploadDataset) -> Path:
        """The dataset's local file, fetched from the store unless already cached."""
        dataset.require_stored()
        assert dataset.sha256 is not None
        dest = self.root / f"{dataset.sha256}.{dataset.format}"
        with self._lock:
            if dest.exists():
                os.utime(dest)  # recently used: evicted last
                return dest
            store = self.store()
            info = store.info(dataset.sha256)
            if info is None:
                raise MissingBlobError(
                    f"dataset {dataset.sha256}: not in the store (never uploaded, or deleted); "
                    "upload it again and resume the study"
                )
            if info.size > min(store.max_bytes, self.max_bytes):
                raise BlobError(
                    f"dataset {dataset.sha256}: {info.size:,} bytes is over this worker's limit "
                    f"of {min(store.max_bytes, self.max_bytes):,} (TUNEFLEET_MAX_DATASET_BYTES, "
                    "TUNEFLEET_CACHE_BYTES)"
                )
            self._evict(keep=info.size)
            store.download(dataset.sha256, dest)
            self.fetches += 1
            return dest

    def _evict(self, keep: int) -> None:
        """Remove least recently used files until `keep` more bytes fit under the bound."""
        self.root.mkdir(parents=True, exist_ok=True)
        files = []
        for entry in self.root.iterdir():
            if entry.name.startswith("."):
                continue  # another process's download in progress
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue
            files.append((stat.st_mtime, stat.st_size, entry))
        total = sum(size for _, size, _ in files)
        for _, size, entry in sorted(files):
            if total + keep <= self.max_bytes:
                break
            entry.unlink(missing_ok=True)
            total -= size
