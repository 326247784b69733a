"""How a table's columns become model features: shared by workers (training) and the client
(preparing data for a model it downloaded), so that both code categories alike.

pandas is imported lazily: the services' contract package does not depend on it; the worker and
the client (its `client` extra) do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MISSING_CATEGORY", "as_category", "fill_missing_category", "prepare"]

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
