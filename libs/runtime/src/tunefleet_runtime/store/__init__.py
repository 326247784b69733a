"""The store: where tunefleet keeps studies, plans, results and models, and the blobs beside
them. Everything outside this package sees the `Store` protocol and the `BlobStore` boundary,
opened from the settings by `open_store` and `open_blobs`, the one place a backend is chosen.

- `base`: the `Store` protocol, `STORE_ERRORS`, the status and trial detail computed from it;
- `bounds`: `bounded`, one time limit on a run of store calls (a service's broker thread);
- `documents`, `rules`: the documents every backend keeps and the rules of writing them;
- `mongo`, `gridfs`: MongoDB/FerretDB (studies and results; blobs in GridFS);
- `memory`: both in one process's memory (unit tests, the conformance suite).
"""

from __future__ import annotations

from tunefleet_runtime.blobs import BlobStore
from tunefleet_runtime.settings import StoreSettings
from tunefleet_runtime.store.base import STORE_ERRORS, Store, study_status
from tunefleet_runtime.store.bounds import Bound, bounded
from tunefleet_runtime.store.gridfs import GridFSBlobStore
from tunefleet_runtime.store.mongo import MongoStore, connect_database
from tunefleet_runtime.store.rules import PlanIncompleteError

__all__ = [
    "STORE_ERRORS",
    "Bound",
    "PlanIncompleteError",
    "Store",
    "bounded",
    "open_blobs",
    "open_store",
    "study_status",
]


def open_store(settings: StoreSettings) -> Store:
    """The store the settings name (MONGODB_URL, MONGODB_DATABASE): what every service and the
    client read and write through. Connecting is lazy: a store that is away fails the first
    read or write (with one of `STORE_ERRORS`), not this call. One backend today; another is
    chosen here, by its URL's scheme. Every call is bounded by TUNEFLEET_STORE_TIMEOUT_S."""
    return MongoStore.connect(settings)


def open_blobs(url: str, database: str, max_bytes: int, *, timeout_s: float = 10.0) -> BlobStore:
    """The blob store beside the store at `url` (a worker's store settings are optional, so
    this takes them one by one); blobs over `max_bytes` are refused. `timeout_s` bounds each
    wait (TUNEFLEET_STORE_TIMEOUT_S), not a whole transfer: a large blob takes many reads."""
    return GridFSBlobStore(connect_database(url, database, timeout_s=timeout_s), max_bytes)
