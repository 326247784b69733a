"""The client's half of uploaded datasets: a local file or a DataFrame becomes a content hash.

`resolve` runs before a study is published. It checks the table by the rules the workers apply
(`tunefleet_runtime.tables.features`: a table they would refuse is refused here, before anything
is uploaded or published), uploads the bytes unless the same content is stored already, and
returns the spec with the dataset rewritten to `{kind: upload, sha256, format, target}`: the
study id then follows the content, not the path. DataFrames are written as Parquet (never
pickle) into a temporary file first, so that the upload streams from disk like any file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunefleet_contract.spec import DATA_FORMATS, DataFormat, SpecError, StudySpec, UploadDataset
from tunefleet_runtime.blobs import BlobError, BlobStore, check_size
from tunefleet_runtime.tables import TableError, features, read_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["columns_of", "resolve"]


def columns_of(path: Path, format: str) -> list[str]:
    """The table's column names, from the Parquet footer or the CSV header (no data read)."""
    if format == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    import pandas as pd

    return [str(c) for c in pd.read_csv(path, nrows=0).columns]


def _check_target(columns: list[str], target: str, where: str) -> None:
    if target not in columns:
        shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
        raise SpecError(f"dataset.target: no column {target!r} in {where} (columns: {shown})")


def _with_dataset(spec: StudySpec, dataset: UploadDataset) -> StudySpec:
    return StudySpec.model_validate({**spec.model_dump(), "dataset": dataset.model_dump()})


def _check_file(blobs: BlobStore, path: Path, format: DataFormat, target: str) -> None:
    """Refuse a file the workers would refuse: cheap checks first (the target in the header,
    the size), then the whole table read as a worker reads it."""
    name = path.name
    try:
        _check_target(columns_of(path, format), target, name)
    except SpecError:
        raise
    except (OSError, ValueError) as exc:
        raise SpecError(f"dataset.path: {name}: cannot read: {exc}") from None
    try:
        check_size(path.stat().st_size, blobs.max_bytes, name)
        features(read_table(path, format, name), target, name)
    except (BlobError, TableError) as exc:
        raise SpecError(f"dataset: {exc}") from None


def _upload(blobs: BlobStore, path: Path, format: DataFormat, name: str) -> str:
    """Store the file unless stored already; its SHA-256."""
    try:
        info, _ = blobs.put_file(path, kind="dataset", format=format, name=name)
    except BlobError as exc:
        raise SpecError(f"dataset: {exc}") from None
    return info.sha256


def resolve(
    spec: StudySpec, blobs: BlobStore, data: pd.DataFrame | None = None, base: Path | None = None
) -> StudySpec:
    """The spec as it is published, with any data it names or is given uploaded."""
    dataset = spec.dataset
    if not isinstance(dataset, UploadDataset):
        if data is not None:
            raise SpecError("data: given, but the spec's dataset is not {kind: upload, target}")
        return spec
    if data is not None:
        if dataset.path is not None or dataset.sha256 is not None:
            raise SpecError("data: given, but the spec's dataset already names a path or sha256")
        return _upload_frame(spec, dataset, blobs, data)
    if dataset.sha256 is not None:
        info = blobs.info(dataset.sha256)
        if info is None:
            raise SpecError(
                f"dataset.sha256: {dataset.sha256} is not stored (deleted, or never uploaded): "
                "submit with the data's path or DataFrame to upload it"
            )
        return spec
    if dataset.path is None:
        raise SpecError("dataset: an upload dataset needs a path, or a DataFrame as data=")
    path = Path(dataset.path).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.is_file():
        raise SpecError(f"dataset.path: {path}: no such file")
    format = DATA_FORMATS[path.suffix.lower()]
    _check_file(blobs, path, format, dataset.target)
    sha = _upload(blobs, path, format, path.name)
    stored = UploadDataset(kind="upload", target=dataset.target, sha256=sha, format=format)
    return _with_dataset(spec, stored)


def _upload_frame(
    spec: StudySpec, dataset: UploadDataset, blobs: BlobStore, data: Any
) -> StudySpec:
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise SpecError(f"data: a pandas DataFrame, not {type(data).__name__}")
    try:
        features(data, dataset.target, "DataFrame")
    except TableError as exc:
        raise SpecError(f"data: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="tunefleet-upload-") as tmp:
        path = Path(tmp) / "data.parquet"
        try:
            # The index is not a feature: dropping it makes equal tables equal bytes.
            data.to_parquet(path, index=False)
        except Exception as exc:  # pyarrow's many kinds; `features` leaves few to reach here
            raise SpecError(
                f"data: DataFrame: cannot be written as Parquet: {type(exc).__name__}: {exc}"
            ) from None
        try:
            # Named as the user knows it: the file is a temporary one of ours.
            check_size(path.stat().st_size, blobs.max_bytes, "DataFrame (as Parquet)")
        except BlobError as exc:
            raise SpecError(f"data: {exc}") from None
        sha = _upload(blobs, path, "parquet", "DataFrame")
    stored = UploadDataset(kind="upload", target=dataset.target, sha256=sha, format="parquet")
    return _with_dataset(spec, stored)
