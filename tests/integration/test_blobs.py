"""Content-addressed blobs and the worker's dataset cache against the real store (GridFS)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bson import ObjectId
from tunefleet_contract.spec import UploadDataset
from tunefleet_runtime.blobs import CHUNK_BYTES, BlobError, BlobTooLargeError, MissingBlobError
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.gridfs import BUCKET, GridFSBlobStore
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_worker.datacache import DataCache

from tests.support.files import random_file


@pytest.fixture
def blobs(settings: ClientSettings) -> GridFSBlobStore:
    return GridFSBlobStore(connect_store(settings), max_bytes=8 * CHUNK_BYTES)


def test_put_is_content_addressed_and_once(blobs: GridFSBlobStore, tmp_path: Path) -> None:
    path, sha = random_file(tmp_path, 2 * CHUNK_BYTES + 17)
    info, sent = blobs.put_file(path, kind="dataset", format="csv", name="data.csv")
    assert (info.sha256, info.size, sent) == (sha, path.stat().st_size, True)
    again, sent_again = blobs.put_file(path, kind="dataset", format="csv")
    assert (again, sent_again) == (info, False)  # the same content uploads nothing
    assert blobs.db[f"{BUCKET}.files"].count_documents({}) == 1
    out = tmp_path / "out" / "copy.csv"
    blobs.download(sha, out)
    assert out.read_bytes() == path.read_bytes()
    assert [b.sha256 for b in blobs.list("dataset")] == [sha]


def test_oversized_is_refused_before_reading(blobs: GridFSBlobStore, tmp_path: Path) -> None:
    path, _ = random_file(tmp_path, 8 * CHUNK_BYTES + 1)
    with pytest.raises(BlobTooLargeError, match="over the limit of 8,388,608"):
        blobs.put_file(path, kind="dataset", format="csv")
    assert blobs.list() == [] and blobs.db[f"{BUCKET}.chunks"].count_documents({}) == 0


def test_truncated_or_corrupt_content_is_an_error(blobs: GridFSBlobStore, tmp_path: Path) -> None:
    path, sha = random_file(tmp_path, 3 * CHUNK_BYTES)
    info, _ = blobs.put_file(path, kind="dataset", format="csv")
    chunks = blobs.db[f"{BUCKET}.chunks"]
    file_id = blobs.catalogue.find_one({"_id": sha})["file_id"]
    chunks.update_one({"files_id": file_id, "n": 1}, {"$set": {"data": b"x" * CHUNK_BYTES}})
    with pytest.raises(BlobError, match="does not match its hash"):
        blobs.download(sha, tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()  # nothing half-written under the real name
    chunks.delete_one({"files_id": file_id, "n": 2})
    with pytest.raises(BlobError):
        blobs.download(sha, tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists() and info.size == 3 * CHUNK_BYTES


def test_an_upload_that_died_is_invisible_and_pruned(
    blobs: GridFSBlobStore, tmp_path: Path
) -> None:
    # What a client killed mid-upload leaves: chunks, no file document, no catalogue entry.
    dead = ObjectId.from_datetime(__import__("datetime").datetime(2020, 1, 1))
    blobs.db[f"{BUCKET}.chunks"].insert_one({"files_id": dead, "n": 0, "data": b"partial"})
    path, sha = random_file(tmp_path, 100)
    blobs.put_file(path, kind="dataset", format="csv")  # a later, whole upload
    assert blobs.prune_orphans() == 1
    assert blobs.db[f"{BUCKET}.chunks"].count_documents({}) == 1
    assert blobs.read_bytes(sha) == path.read_bytes()  # the whole one is untouched


def test_missing_and_deleted(blobs: GridFSBlobStore, tmp_path: Path) -> None:
    path, sha = random_file(tmp_path, 10)
    blobs.put_file(path, kind="dataset", format="csv")
    assert blobs.delete(sha) and not blobs.delete(sha)
    with pytest.raises(MissingBlobError, match="never uploaded, or deleted"):
        blobs.read_bytes(sha)
    assert blobs.db[f"{BUCKET}.chunks"].count_documents({}) == 0


def test_cache_fetches_once_and_stays_bounded(blobs: GridFSBlobStore, tmp_path: Path) -> None:
    cache = DataCache(tmp_path / "cache", max_bytes=3 * CHUNK_BYTES, store=lambda: blobs)
    specs = []
    for i in range(3):
        path, sha = random_file(tmp_path, CHUNK_BYTES + i, f"d{i}.csv")
        blobs.put_file(path, kind="dataset", format="csv")
        specs.append(UploadDataset(kind="upload", target="y", sha256=sha, format="csv"))
    first = cache.path(specs[0])
    assert cache.path(specs[0]) == first and cache.fetches == 1  # fetched once
    cache.path(specs[1])
    cache.path(specs[2])  # over the bound: the least recently used goes
    assert cache.fetches == 3
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        f"{s.sha256}.csv" for s in specs[1:]
    )
    blobs.delete(specs[0].sha256 or "")
    with pytest.raises(MissingBlobError, match="upload it again and resume"):
        cache.path(specs[0])


def test_cache_without_store_says_so(tmp_path: Path) -> None:
    cache = DataCache(tmp_path, max_bytes=1 << 20, store=None)
    with pytest.raises(BlobError, match="no MONGODB_URL"):
        cache.path(UploadDataset(kind="upload", target="y", sha256="0" * 64, format="csv"))
