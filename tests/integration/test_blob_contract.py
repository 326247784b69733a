"""What a blob store must do, run against every backend: GridFS on a real MongoDB-protocol
server and the in-memory one. Content-addressed, stored once, visible only whole, verified
when read, bounded in size."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from tunefleet_runtime.blobs import (
    CHUNK_BYTES,
    BlobError,
    BlobStore,
    BlobTooLargeError,
    MissingBlobError,
)
from tunefleet_runtime.store import open_blobs
from tunefleet_runtime.store.memory import MemoryBlobStore

from tests.support.files import random_file

LIMIT = 4 * CHUNK_BYTES


@pytest.fixture(params=["memory", "gridfs"])
def blobs(request: pytest.FixtureRequest) -> Iterator[BlobStore]:
    if request.param == "memory":
        yield MemoryBlobStore(LIMIT)
        return
    settings = request.getfixturevalue("settings")
    yield open_blobs(str(settings.mongodb_url), settings.mongodb_database, LIMIT)


def test_content_is_stored_once_under_its_hash(blobs: BlobStore, tmp_path: Path) -> None:
    path, sha = random_file(tmp_path, 2 * CHUNK_BYTES + 17)
    info, sent = blobs.put_file(path, kind="dataset", format="csv", name="data.csv")
    assert (info.sha256, info.size, info.kind, info.name, sent) == (
        sha,
        path.stat().st_size,
        "dataset",
        "data.csv",
        True,
    )
    again, sent_again = blobs.put_file(path, kind="dataset", format="csv")
    assert (again, sent_again) == (info, False)
    out = tmp_path / "out" / "copy.csv"
    assert blobs.download(sha, out) == info
    assert out.read_bytes() == path.read_bytes()
    assert not list(out.parent.glob("*.part"))  # written whole, then renamed
    assert blobs.read_bytes(sha) == path.read_bytes()
    assert blobs.info(sha) == info


def test_two_uploads_of_one_content_both_succeed_and_one_is_kept(blobs: BlobStore) -> None:
    data = b"model bytes" * 1000
    sha = hashlib.sha256(data).hexdigest()
    # Both checked that it was not stored yet, then both upload.
    first = blobs._put(io.BytesIO(data), sha, len(data), kind="model", format="ubj", name="a")
    second = blobs._put(io.BytesIO(data), sha, len(data), kind="model", format="ubj", name="b")
    assert first[1] and not second[1] and second[0] == first[0]
    assert [b.sha256 for b in blobs.list("model")] == [sha]


def test_content_that_changed_while_uploading_is_not_stored(blobs: BlobStore) -> None:
    claimed = hashlib.sha256(b"what was hashed").hexdigest()
    with pytest.raises(BlobError, match="changed while it was uploaded"):
        blobs._put(io.BytesIO(b"what was read"), claimed, 13, kind="dataset", format="csv", name="")
    assert blobs.info(claimed) is None and blobs.list() == []


def test_over_the_limit_is_refused_before_reading(blobs: BlobStore, tmp_path: Path) -> None:
    path, _ = random_file(tmp_path, LIMIT + 1)
    with pytest.raises(BlobTooLargeError, match="over the limit"):
        blobs.put_file(path, kind="dataset", format="csv")
    with pytest.raises(BlobTooLargeError):
        blobs.put_bytes(b"x" * (LIMIT + 1), kind="model", format="ubj")
    assert blobs.list() == []


def test_listed_by_kind_newest_first_and_deleted(blobs: BlobStore) -> None:
    model, _ = blobs.put_bytes(b"a model", kind="model", format="ubj")
    first, _ = blobs.put_bytes(b"a,b\n1,2\n", kind="dataset", format="csv")
    second, _ = blobs.put_bytes(b"a,b\n3,4\n", kind="dataset", format="csv")
    assert [b.sha256 for b in blobs.list("dataset")] == [second.sha256, first.sha256]
    assert {b.sha256 for b in blobs.list()} == {model.sha256, first.sha256, second.sha256}
    assert blobs.delete(first.sha256) and not blobs.delete(first.sha256)
    with pytest.raises(MissingBlobError, match="never uploaded, or deleted"):
        blobs.open(first.sha256)
    assert blobs.info(first.sha256) is None
    assert blobs.prune_orphans() == 0  # nothing half-uploaded here
    assert blobs.read_bytes(second.sha256) == b"a,b\n3,4\n"


def test_a_blob_is_found_by_its_identity(blobs: BlobStore) -> None:
    assert blobs.find("model:a") is None
    first, stored = blobs.put_bytes(b"fit 1", kind="model", format="cbm", identity="model:a")
    assert stored and first.identity == "model:a"
    assert blobs.find("model:a") == first == blobs.info(first.sha256)
    assert blobs.find("model:b") is None and blobs.find("") is None
    other, _ = blobs.put_bytes(b"fit 2", kind="model", format="cbm", identity="model:b")
    assert blobs.find("model:b") == other
    plain, _ = blobs.put_bytes(b"a,b\n1,2\n", kind="dataset", format="csv")
    assert plain.identity == "" and blobs.find("model:a") == first
    assert blobs.delete(first.sha256) and blobs.find("model:a") is None
