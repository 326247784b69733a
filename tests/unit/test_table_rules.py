"""The rules a table must meet (`tunefleet_runtime.tables.features`), as the worker applies them:
what cannot be tuned on is refused, naming what is wrong, rather than trained or stringified."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tunefleet_runtime.tables import TableError, features
from tunefleet_worker.datasets import DatasetError, from_frame

from tests.support.tables import mixed_table

Change = Callable[[pd.DataFrame], pd.DataFrame]


def _with(name: str, values: list[Any]) -> Change:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        column = pd.Series([values[i % len(values)] for i in range(len(frame))], dtype=object)
        return frame.assign(**{name: column})

    return change


def _renamed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_axis(["age", "age", "plan", "region", "target"], axis="columns")


BAD: list[tuple[str, Change, str]] = [
    ("one class", lambda f: f.assign(target=1), r"the target 'target' is 1 in all 240 rows"),
    (
        "constant regression",
        lambda f: f.assign(target=2.5),
        r"'target' is 2.5 in all 240 rows: nothing to learn",
    ),
    ("one label", lambda f: f.assign(target="yes"), r"'target' is 'yes' in all 240 rows"),
    (
        "dicts",
        _with("meta", [{"k": 1}, None]),
        r"feature column 'meta' holds dict \(row 0: \{'k': 1\}\) values; give numbers, strings",
    ),
    ("lists", _with("tags", [["a", "b"]]), r"feature column 'tags' holds list \(row 0"),
    (
        "ints and strings",
        _with("code", [1, "x"]),
        r"feature column 'code' mixes int \(row 0: 1\) and str \(row 1: 'x'\) values; .*"
        r"astype\(str\)",
    ),
    ("a target of dicts", _with("target", [{"a": 1}, {"b": 2}]), r"the target 'target' holds dict"),
    ("a name twice", _renamed, r"columns named more than once: 'age'"),
    ("no rows", lambda f: f.iloc[:0], r"DataFrame: 0 rows; a table needs at least two"),
    ("one row", lambda f: f.iloc[:1], r"DataFrame: 1 rows; a table needs at least two"),
    (
        "a missing target",
        lambda f: f.assign(target=f["target"].where(f.index > 2)),
        r"the target 'target' has 3 missing values",
    ),
    ("dates", lambda f: f.assign(when=pd.Timestamp("2024-01-01")), r"'when' is datetime64"),
]


@pytest.mark.parametrize(("change", "error"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_table_that_cannot_be_tuned_on_is_refused_with_what_is_wrong(
    change: Change, error: str
) -> None:
    table = change(mixed_table())
    with pytest.raises(TableError, match=error) as rules:
        features(table, "target")
    with pytest.raises(DatasetError) as worker:
        from_frame(table, "target")
    assert str(worker.value) == str(rules.value)  # the worker's rules are these


def test_objects_holding_numbers_are_numbers_as_parquet_stores_them() -> None:
    frame = mixed_table().assign(count=pd.Series([1, 2.5, None, 4] * 60, dtype=object))
    made = features(frame, "target")
    assert "count" not in made.categorical
    assert made.X["count"].dtype == np.float64
    assert np.isnan(made.X["count"][2]) and made.X["count"][1] == 2.5
    # Strings, booleans (a Parquet boolean column with nulls reads back as objects) and
    # columns of nothing but missing values stay categories, as before.
    kept = mixed_table().assign(
        flag=pd.Series([True, None] * 120, dtype=object),
        empty=pd.Series([None] * 240, dtype=object),
    )
    assert {"plan", "region", "flag", "empty"} <= set(features(kept, "target").categorical)


def test_a_two_class_target_and_a_good_table_pass() -> None:
    made = features(mixed_table(), "target")
    assert made.names == ("age", "income", "plan", "region")
    assert sorted(set(made.y.tolist())) == [0, 1]
