"""The client's tables for people: results and studies as pandas DataFrames (pandas is the
`client` extra, imported when a table is made)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tunefleet_runtime.records import TrialRecord

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PARAM_PREFIX",
    "RESULT_COLUMNS",
    "STUDY_COLUMNS",
    "best",
    "results",
    "scored",
    "studies",
]

# The columns of a results table besides the parameters, in this order.
RESULT_COLUMNS = [
    "trial_id",
    "library",
    "status",
    "score",
    "score_std",
    "metric",
    "fit_time_s",
    "score_time_s",
    "fit_shared_by",
    "attempts",
    "worker",
    "core_s",
    "pool",
    "finished_at",
    "reason",
    "error",
]
# Like scikit-learn's cv_results_: `param_<name>`, so a parameter never shadows a column.
PARAM_PREFIX = "param_"
STUDY_COLUMNS = [
    "study_id",
    "name",
    "submitted_at",
    "n_trials",
    "done",
    "failed",
    "best_score",
    "metric",
    "state",
]


def results(records: Iterable[TrialRecord]) -> pd.DataFrame:
    """One row per trial with a result, in the order they finished; parameters as
    `param_<name>` columns."""
    import pandas as pd

    rows = []
    records = sorted(records, key=lambda r: r.trial_id)
    # Where early stopping chose rounds, they are a column: the trials' params have none.
    extra = ["best_round"] if any(r.best_round is not None for r in records) else []
    for record in records:
        fields = record.as_dict()
        row = {column: fields.get(column) for column in RESULT_COLUMNS}
        if extra:
            row["best_round"] = record.best_round
        for name, value in sorted(record.params.items()):
            row[PARAM_PREFIX + name] = value
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else RESULT_COLUMNS)
    if not rows:
        return frame
    frame["finished_at"] = pd.to_datetime(frame["finished_at"], unit="s", utc=True)
    frame = frame.sort_values("finished_at", kind="stable").reset_index(drop=True)
    params = sorted(c for c in frame.columns if c.startswith(PARAM_PREFIX))
    if extra:
        frame["best_round"] = frame["best_round"].astype("Int64")  # absent: <NA>, not 1.0e0
    return frame[RESULT_COLUMNS + extra + params]


def scored(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a results table with a score to rank (`search.views.scored`, by column)."""
    return frame[(frame["status"] == "done") & frame["score"].notna()] if len(frame) else frame


def best(frame: pd.DataFrame, n: int, by_library: bool) -> pd.DataFrame:
    """The `n` best scored trials of a results table, or the `n` best of each library."""
    frame = scored(frame).sort_values("score", ascending=False, kind="stable")
    if by_library:
        frame = frame.groupby("library", sort=True, group_keys=False).head(n)
        frame = frame.sort_values(["library", "score"], ascending=[True, False])
    else:
        frame = frame.head(n)
    # Parameters that none of these trials has (another library's) are noise here.
    return frame.dropna(axis="columns", how="all").reset_index(drop=True)


def studies(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Studies, one row each (`STUDY_COLUMNS`)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=STUDY_COLUMNS)
    frame["submitted_at"] = pd.to_datetime(frame["submitted_at"], unit="s", utc=True)
    return frame
