"""The upload dataset kind: what a user writes, and what may be published."""

from __future__ import annotations

import time

import pytest
from tunefleet_contract.messages import DecodeError, StudyRequest
from tunefleet_contract.spec import SpecError
from tunefleet_runtime.validation import parse_spec

SHA = "ab" * 32


def spec(dataset: dict[str, object]) -> dict[str, object]:
    return {"dataset": dataset, "search": {"noop": {}}}


def test_path_hash_or_nothing() -> None:
    assert parse_spec(spec({"kind": "upload", "target": "y", "path": "d.csv"})).dataset
    assert parse_spec(spec({"kind": "upload", "target": "y"})).dataset  # data= at submit
    stored = parse_spec(spec({"kind": "upload", "target": "y", "sha256": SHA, "format": "csv"}))
    assert (
        stored.study_id()
        != parse_spec(
            spec({"kind": "upload", "target": "y", "sha256": "cd" * 32, "format": "csv"})
        ).study_id()
    )  # the study follows the content


@pytest.mark.parametrize(
    ("dataset", "error"),
    [
        ({"kind": "upload", "target": "y", "path": "d.txt"}, "must end in .csv or .parquet"),
        ({"kind": "upload", "target": "y", "path": "d.csv", "sha256": SHA}, "not both"),
        ({"kind": "upload", "target": "y", "sha256": SHA}, "sha256 and format go together"),
        ({"kind": "upload", "target": "y", "sha256": "xyz", "format": "csv"}, "sha256"),
        ({"kind": "upload", "path": "d.csv"}, "dataset.target: Field required"),
    ],
)
def test_bad_upload_datasets(dataset: dict[str, object], error: str) -> None:
    with pytest.raises(SpecError, match=error):
        parse_spec(spec(dataset))


def test_only_hashes_are_published() -> None:
    local = parse_spec(spec({"kind": "upload", "target": "y", "path": "/home/me/d.csv"}))
    with pytest.raises(ValueError, match="must name its sha256"):
        StudyRequest(study_id=local.study_id(), spec=local, submitted_at=time.time())
    stored = parse_spec(spec({"kind": "upload", "target": "y", "sha256": SHA, "format": "csv"}))
    body = StudyRequest(study_id="s", spec=stored, submitted_at=1.0).encode()
    assert StudyRequest.decode(body).spec == stored
    with pytest.raises(DecodeError, match="must name its sha256"):
        StudyRequest.decode(body.replace(f',"sha256":"{SHA}","format":"csv"'.encode(), b""))
