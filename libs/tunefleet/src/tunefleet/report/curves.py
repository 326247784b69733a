"""The report's validation curves of a library with early stopping: per round, the mean over the
folds of the library's evaluation metric with a band of one standard deviation either side, as
the trial's stored `EarlyStopped` summary holds them, and the best round marked. The best trial
is shown; a menu picks any of the library's best `CURVE_TRIALS`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tunefleet_runtime.records import TrialRecord

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["CURVE_TRIALS", "TRACES_PER_TRIAL", "curve_title", "rounds_cell", "validation_curves"]

# The library's best this many trials can be picked in the menu: a page stays small (a curve is
# up to 503 points, four traces).
CURVE_TRIALS = 20
# Per trial: the band's upper edge, its lower edge (filled to the upper), the mean, the best.
TRACES_PER_TRIAL = 4


def rounds_cell(stop: Mapping[str, Any] | None) -> str:
    """The leaderboard's rounds: chosen / trained, and whether the median rule stopped it."""
    if not stop:
        return ""
    cell = f"{stop['best_round']} / {stop['rounds_trained']}"
    return cell + " (median stop)" if stop.get("stopped_by") == "median" else cell


def curve_title(library: str, rank: int, record: TrialRecord) -> str:
    stop = record.early_stopping or {}
    return (
        f"{library}: validation curve of trial {record.trial_id} (#{rank}), "
        f"best round {stop.get('best_round')}"
    )


def _band(means: Sequence[float | None], stds: Sequence[float | None], sign: int) -> list[Any]:
    return [
        None if m is None or s is None else m + sign * s for m, s in zip(means, stds, strict=True)
    ]


def validation_curves(library: str, records: Sequence[TrialRecord]) -> go.Figure | None:
    """The validation curves of the library's done trials with early stopping, best first
    (`records` in that order); None where it has none."""
    import plotly.graph_objects as go

    chosen = [
        r
        for r in records
        if r.library == library and r.status == "done" and r.early_stopping is not None
    ][:CURVE_TRIALS]
    if not chosen:
        return None
    fig = go.Figure()
    metric = ""
    for rank, record in enumerate(chosen, 1):
        stop = record.early_stopping or {}
        metric = str(stop.get("metric", ""))
        rounds = list(stop.get("curve_rounds") or [])
        means = list(stop.get("curve_mean") or [])
        stds = list(stop.get("curve_std") or [])
        shown = rank == 1
        common: dict[str, Any] = {"x": rounds, "visible": shown, "meta": record.trial_id}
        fig.add_trace(
            go.Scatter(
                y=_band(means, stds, 1),
                mode="lines",
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                name="mean + std",
                **common,
            )
        )
        fig.add_trace(
            go.Scatter(
                y=_band(means, stds, -1),
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(31, 119, 180, 0.2)",
                hoverinfo="skip",
                name="± std over folds",
                **common,
            )
        )
        fig.add_trace(
            go.Scatter(
                y=means,
                mode="lines",
                line={"color": "rgb(31, 119, 180)", "width": 2},
                name=f"mean {metric}",
                **common,
            )
        )
        best = stop.get("best_round")
        fig.add_trace(
            go.Scatter(
                x=[best],
                y=[stop.get("best_value")],
                mode="markers+text",
                marker={"symbol": "star", "size": 14, "color": "crimson"},
                text=[f"best round {best}"],
                textposition="top center",
                name="best round",
                visible=shown,
                meta=record.trial_id,
            )
        )
    buttons = []
    for rank, record in enumerate(chosen, 1):
        visible = [False] * (TRACES_PER_TRIAL * len(chosen))
        start = (rank - 1) * TRACES_PER_TRIAL
        visible[start : start + TRACES_PER_TRIAL] = [True] * TRACES_PER_TRIAL
        buttons.append(
            {
                "label": f"#{rank} {record.trial_id[:10]} ({record.best_round} rounds)",
                "method": "update",
                "args": [{"visible": visible}, {"title.text": curve_title(library, rank, record)}],
            }
        )
    first = chosen[0].early_stopping or {}
    better = "higher" if first.get("greater_is_better") else "lower"
    fig.update_layout(
        title=curve_title(library, 1, chosen[0]),
        xaxis_title="round",
        yaxis_title=f"{metric} on the validation folds ({better} is better)",
        updatemenus=[
            {
                "buttons": buttons,
                "direction": "down",
                "x": 1.0,
                "xanchor": "right",
                "y": 1.15,
                "yanchor": "top",
                "showactive": True,
            }
        ],
    )
    return fig
