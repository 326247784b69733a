"""What a table must be to be tuned on, and how its columns become model features: shared by
workers (training) and the client (checking a table before it uploads it, and preparing data for
a model it downloaded), so that both apply the same rules and code categories alike.

`read_table` and `features` are the rules: a worker applies them to what it fetched, the client
to the DataFrame or local file it holds, before anything is uploaded or published, so that a
table the workers would refuse is refused at `submit`, with the same words.

pandas is imported lazily: the services' contract package does not depend on it; the worker and
the client (its `client` extra) do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MISSING_CATEGORY",
    "Features",
    "TableError",
    "as_category",
    "features",
    "fill_missing_category",
    "prepare",
    "read_table",
]

# CatBoost refuses NaN in a categorical feature and asks for it as a string: that is its native
# way, so it sees missing values of a categorical feature as this level.
MISSING_CATEGORY = "__missing__"


def as_category(column: pd.Series[Any], levels: Sequence[str] | None = None) -> pd.Series[Any]:
    """A pandas categorical of the column's values as strings; missing stays missing.

    `levels`: the training data's, in order (values outside them become missing); without it a
    categorical column keeps its own levels and any other gets its distinct values, sorted."""
    import pandas as pd

    if levels is None and isinstance(column.dtype, pd.CategoricalDtype):
        # Its own levels, in its order, as strings: a stored model names them as strings.
        names = [str(level) for level in column.cat.categories]
        return column.cat.rename_categories(names).reset_index(drop=True)
    present = column.notna()
    text = column.astype(object).where(~present, column.astype(str)).where(present, None)
    if levels is None:
        levels = sorted(set(text[present]))
    return pd.Series(pd.Categorical(text, categories=list(levels)), name=column.name)


def fill_missing_category(column: pd.Series[Any], level: str = MISSING_CATEGORY) -> pd.Series[Any]:
    """A categorical column with its missing values as `level`, a category of its own."""
    if not column.isna().any():
        return column
    return column.cat.add_categories([level]).fillna(level)


def prepare(
    frame: pd.DataFrame,
    feature_names: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    missing_category: str | None = None,
) -> Any:
    """`frame`'s features as a model trained by tunefleet takes them: the training columns in
    order, categorical ones with the training levels, numbers as float64. A frame with no
    categorical feature becomes a float64 array, as the model was trained on one."""
    import numpy as np
    import pandas as pd

    if not feature_names:
        raise ValueError(
            "the model was trained on a built-in or synthetic dataset, which has no column "
            "names: give it a numeric array with the columns in that dataset's order"
        )
    missing = [name for name in feature_names if name not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks the model's features: {', '.join(missing[:20])}")
    if not categories:
        return frame[list(feature_names)].to_numpy(dtype=np.float64)
    columns: dict[str, Any] = {}
    for name in feature_names:
        column = frame[name].reset_index(drop=True)
        if name in categories:
            column = as_category(column, categories[name])
            if missing_category is not None:
                column = fill_missing_category(column, missing_category)
            columns[name] = column
        else:
            columns[name] = column.astype(np.float64)
    return pd.DataFrame(columns)


class TableError(ValueError):
    """The table cannot be tuned on; the text names the table and what is wrong with it."""


@dataclass(frozen=True)
class Features:
    """A table's features and target as every trial sees them (before the target is coded).

    `X`: a float64 array when every feature is numeric (NaN is a missing value for all three
    libraries); else a DataFrame of float64 columns and pandas categoricals, whose names are in
    `categorical`. `y`: the target's values, none missing, at least two distinct."""

    X: Any
    y: Any
    categorical: tuple[str, ...]
    names: tuple[str, ...]


# Where a column is of pandas' `object` dtype, what its values are (`infer_dtype`, missing values
# skipped): strings (or booleans, or nothing but missing values) are categories, numbers are
# numbers, as Parquet stores them; anything else is refused.
_CATEGORY_VALUES = {"string", "boolean", "empty"}
_NUMBER_VALUES = {"integer", "floating", "mixed-integer-float"}
_HINT = "give numbers, strings or categories"


def read_table(path: Path, format: str, name: str) -> pd.DataFrame:
    """The table in a CSV or Parquet file; one that cannot be read (a ragged CSV, a corrupt
    Parquet file) is a `TableError` naming `name`, not the reader's exception."""
    import pandas as pd

    try:
        return pd.read_parquet(path) if format == "parquet" else pd.read_csv(path)
    except Exception as exc:  # pandas and pyarrow raise many kinds for a corrupt file
        raise TableError(f"{name}: cannot read: {type(exc).__name__}: {exc}") from None


def _examples(column: pd.Series[Any]) -> list[str]:
    """The kinds of value in an object column, with where each is first, as in
    `int (row 0: 1)`, at most three."""
    found: dict[type, str] = {}
    for row, value in enumerate(column):
        if value is None or (isinstance(value, float) and value != value):
            continue  # missing
        if type(value) not in found:
            found[type(value)] = f"{type(value).__name__} (row {row}: {value!r:.40})"
            if len(found) == 3:
                break
    return list(found.values())


def _column(column: pd.Series[Any], what: str, table: str) -> tuple[pd.Series[Any], bool]:
    """The column as tunefleet takes it and whether it is categorical; `TableError` if it is
    neither numbers, strings nor categories."""
    import pandas as pd

    if column.dtype.kind in "biuf":
        return column, False
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column, True
    if column.dtype.kind not in "OSUT":
        raise TableError(f"{table}: {what} is {column.dtype}; {_HINT}")
    values = pd.api.types.infer_dtype(column, skipna=True)
    if values in _CATEGORY_VALUES:
        return column, True
    if values in _NUMBER_VALUES:
        return pd.to_numeric(column), False  # as Parquet stores it, and a worker reads it
    examples = _examples(column)
    if len(examples) > 1:
        raise TableError(
            f"{table}: {what} mixes {' and '.join(examples)} values; {_HINT}: convert it, "
            f"e.g. frame[{column.name!r}].astype(str)"
        )
    raise TableError(f"{table}: {what} holds {''.join(examples)} values; {_HINT}")


def features(frame: pd.DataFrame, target: str, name: str = "DataFrame") -> Features:
    """The rules a table must meet, and the features it makes: string column names, each once;
    the target present, in at least two rows, never missing, with at least two distinct values
    (one class, or a constant, leaves nothing to learn); every column numbers, strings or
    categories. A `TableError` names `name` and what is wrong."""
    import numpy as np
    import pandas as pd

    names = list(frame.columns)
    odd = [c for c in names if not isinstance(c, str)]
    if odd:
        raise TableError(f"{name}: column names must be strings, not {odd[0]!r}")
    twice = sorted({c for c in names if names.count(c) > 1}) if frame.columns.has_duplicates else []
    if twice:
        raise TableError(f"{name}: columns named more than once: {', '.join(map(repr, twice))}")
    if target not in frame.columns:
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise TableError(f"{name}: no column {target!r} (columns: {shown})")
    if len(frame) < 2:
        raise TableError(f"{name}: {len(frame)} rows; a table needs at least two")
    frame = frame.reset_index(drop=True)  # rows are positions: a slice's index must not align
    y_column, _ = _column(frame[target], f"the target {target!r}", name)
    missing = int(y_column.isna().sum())
    if missing:
        raise TableError(f"{name}: the target {target!r} has {missing} missing values")
    if y_column.nunique() < 2:
        value = y_column.iloc[0]
        value = value.item() if isinstance(value, np.generic) else value
        raise TableError(
            f"{name}: the target {target!r} is {value!r} in all {len(frame)} rows: "
            "nothing to learn (a classification needs two classes or more, a regression a "
            "target that varies)"
        )
    columns: dict[str, Any] = {}
    categorical: list[str] = []
    for column_name in names:
        if column_name == target:
            continue
        column, is_category = _column(frame[column_name], f"feature column {column_name!r}", name)
        if is_category:
            columns[column_name] = as_category(column)
            categorical.append(column_name)
        else:
            columns[column_name] = column.astype(np.float64)
    y = y_column.to_numpy()
    if categorical:
        X: Any = pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))
    else:
        X = np.column_stack(list(columns.values())) if columns else np.empty((len(frame), 0))
    return Features(X, y, tuple(categorical), tuple(columns))
