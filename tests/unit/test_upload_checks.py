"""The client checks a table by the workers' rules before it uploads it (issue 24): what they
would refuse after the study is registered is refused at submit, with their words, and nothing
is uploaded or published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tunefleet.upload import resolve
from tunefleet_contract.spec import SpecError
from tunefleet_runtime.store.memory import MemoryBlobStore
from tunefleet_runtime.tables import TableError, features
from tunefleet_runtime.validation import parse_spec

from tests.support.tables import mixed_table
from tests.unit.test_table_rules import BAD, Change

FRAME_SPEC = {"dataset": {"kind": "upload", "target": "target"}, "search": {"noop": {}}}


@pytest.mark.parametrize(("change", "error"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_dataframe_the_workers_refuse_is_refused_at_submit_with_their_words(
    change: Change, error: str
) -> None:
    table = change(mixed_table())
    with pytest.raises(TableError) as rules:
        features(table, "target")
    blobs = MemoryBlobStore(1 << 30)
    with pytest.raises(SpecError) as client:
        resolve(parse_spec(FRAME_SPEC), blobs, table)
    assert str(client.value) == f"data: {rules.value}"  # not pandas' or pyarrow's exception
    assert blobs.list() == []  # nothing uploaded


def _spec(path: str) -> Any:
    return parse_spec(
        {"dataset": {"kind": "upload", "target": "y", "path": path}, "search": {"noop": {}}}
    )


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("ragged.csv", b"a,y\n1,0\n2,1,7\n3,0\n", r"dataset: ragged.csv: cannot read: .*fields"),
        ("nan.csv", b"a,y\n1,0\n2,\n3,1\n", r"dataset: nan.csv: the target 'y' has 1 missing"),
        ("empty.csv", b"a,y\n", r"dataset: empty.csv: 0 rows"),
        ("one.csv", b"a,y\n1,0\n2,0\n3,0\n", r"dataset: one.csv: the target 'y' is 0 in all 3"),
    ],
)
def test_a_local_file_is_read_and_checked_before_it_is_uploaded(
    tmp_path: Path, name: str, content: bytes, error: str
) -> None:
    (tmp_path / name).write_bytes(content)
    blobs = MemoryBlobStore(1 << 30)
    with pytest.raises(SpecError, match=error):
        resolve(_spec(name), blobs, base=tmp_path)
    assert blobs.list() == []


def test_corrupt_parquet_pages_are_refused_before_upload(tmp_path: Path) -> None:
    # A whole footer (the header check passes) over pages that are not Parquet.
    path = tmp_path / "t.parquet"
    pd.DataFrame({"a": np.arange(200.0), "y": [0, 1] * 100}).to_parquet(path)
    data = bytearray(path.read_bytes())
    data[8:400] = b"\xff" * 392
    path.write_bytes(bytes(data))
    blobs = MemoryBlobStore(1 << 30)
    with pytest.raises(SpecError, match=r"dataset: t.parquet: cannot read"):
        resolve(_spec("t.parquet"), blobs, base=tmp_path)
    assert blobs.list() == []


def test_a_dataframe_over_the_limit_is_named_as_the_user_knows_it() -> None:
    blobs = MemoryBlobStore(1000)
    with pytest.raises(SpecError) as refused:
        resolve(parse_spec(FRAME_SPEC), blobs, mixed_table())
    message = str(refused.value)
    assert message.startswith("data: DataFrame (as Parquet): ")
    assert "bytes is over the limit of 1,000 (TUNEFLEET_MAX_DATASET_BYTES)" in message
    assert "tunefleet-upload-" not in message and "data.parquet" not in message


def test_a_good_file_is_uploaded(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes(b"a,b,y\n1,red,0\n2,blue,1\n3,green,0\n4,red,1\n")
    blobs = MemoryBlobStore(1 << 30)
    resolved = resolve(_spec("t.csv"), blobs, base=tmp_path)
    assert [info.sha256 for info in blobs.list()] == [getattr(resolved.dataset, "sha256", "")]
