from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tunefleet_contract.spec import BuiltinDataset, FileDataset, SyntheticDataset
from tunefleet_worker.datasets import DatasetError, load_dataset


def test_builtin_and_synthetic() -> None:
    iris = load_dataset(BuiltinDataset(name="iris"))
    assert iris.X.shape == (150, 4) and iris.task == "classification"
    assert set(np.unique(iris.y)) == {0, 1, 2}
    reg = load_dataset(SyntheticDataset(kind="make_regression", n_samples=50, n_features=3, seed=1))
    assert reg.X.shape == (50, 3) and reg.task == "regression"
    again = load_dataset(
        SyntheticDataset(kind="make_regression", n_samples=50, n_features=3, seed=1)
    )
    assert again is reg  # loaded once per process


def test_synthetic_argument_errors_are_dataset_errors() -> None:
    with pytest.raises(DatasetError, match="make_classification"):
        load_dataset(
            SyntheticDataset(kind="make_classification", n_features=2, n_informative=5, seed=0)
        )


def test_files_inside_roots_only(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0, 1, 0, 1], "y": ["x", "y", "x", "y"]})
    frame.to_csv(root / "d.csv", index=False)
    frame.to_parquet(root / "d.parquet")
    (tmp_path / "secret.csv").write_text("a,y\n1,2\n")

    data = load_dataset(FileDataset(path="d.csv", target="y"), [root])
    assert data.task == "classification" and data.X.shape == (4, 2)
    assert load_dataset(FileDataset(path="d.parquet", target="y"), [root]).X.shape == (4, 2)

    with pytest.raises(DatasetError, match="may not leave them"):
        load_dataset(FileDataset(path="../secret.csv", target="y"), [root])
    with pytest.raises(DatasetError, match="may not leave them"):
        load_dataset(FileDataset(path=str(tmp_path / "secret.csv"), target="y"), [root])
    with pytest.raises(DatasetError, match="no TUNEFLEET_DATA_ROOTS"):
        load_dataset(FileDataset(path="d.csv", target="y"), [])
    with pytest.raises(DatasetError, match="no column 'label'"):
        load_dataset(FileDataset(path="d.csv", target="label"), [root])


def test_corrupt_files_and_unusable_columns(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(FileDataset(path="bad.parquet", target="y"), [tmp_path])
    pd.DataFrame({"city": ["a", "b"], "y": [1.5, 2.5]}).to_csv(tmp_path / "t.csv", index=False)
    table = load_dataset(FileDataset(path="t.csv", target="y"), [tmp_path])
    assert table.categorical == ("city",)  # strings are categories (test_parity_tables.py)
    when = pd.to_datetime(["2024-01-01", "2024-01-02"])
    pd.DataFrame({"when": when, "y": [1.5, 2.5]}).to_parquet(tmp_path / "d.parquet")
    with pytest.raises(DatasetError, match=r"'when' is datetime64.*numbers, strings or categ"):
        load_dataset(FileDataset(path="d.parquet", target="y"), [tmp_path])


def test_reasons_show_the_specs_path_not_the_workers_data_roots(tmp_path: Path) -> None:
    # A reason reaches users (a failed trial's error, a dead letter): the roots are the worker's.
    root = tmp_path / "srv-data-roots"
    (root / "sub" / "d.csv").mkdir(parents=True)  # a directory: pandas names its full path
    (root / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    for path, says in [
        ("missing.csv", "missing.csv: not found under this worker's data roots"),
        ("sub/d.csv", "sub/d.csv"),
        ("bad.parquet", "bad.parquet: cannot read"),
    ]:
        with pytest.raises(DatasetError) as raised:
            load_dataset(FileDataset(path=path, target="y"), [root])
        assert says in str(raised.value)
        assert "srv-data-roots" not in str(raised.value) and str(tmp_path) not in str(raised.value)
