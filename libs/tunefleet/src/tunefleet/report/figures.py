"""The report's figures of any library's trials: scores over time and per library, each
parameter against the score, parallel coordinates, and parameter importance.

Parameter importance is *permutation importance on a surrogate*: a random forest is fitted to
predict each trial's score from its parameters (categorical values as ordinal codes, a parameter
absent from a trial, e.g. a conditional one, as its own code), then each parameter's column is
shuffled and the drop in the forest's R² is that parameter's importance (mean ± std over 10
shuffles). It says which parameters the scores depend on *within the sampled region*, not
causally, and needs a handful of trials with varied parameters to mean anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunefleet.frames import PARAM_PREFIX

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = [
    "IMPORTANCE_METHOD",
    "best_over_time",
    "distribution",
    "encode",
    "figure_html",
    "importance",
    "is_numeric",
    "parallel",
    "param_columns",
    "score_vs_params",
    "varying",
]

IMPORTANCE_METHOD = (
    "permutation importance (10 repeats) of a random-forest surrogate (200 trees) fitted to "
    "predict the score from the parameters"
)
# Fewer finished trials than this, and a surrogate model says nothing.
_MIN_TRIALS_FOR_IMPORTANCE = 8
# The surrogate is fitted on at most this many trials (a sample): enough for a ranking.
_MAX_SURROGATE_ROWS = 5000


def param_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(PARAM_PREFIX)]


def varying(frame: pd.DataFrame) -> list[str]:
    """The parameters that take more than one value (counting absent) among these trials."""
    return [
        c
        for c in param_columns(frame)
        if frame[c].map(repr).nunique(dropna=False) > 1 and frame[c].notna().any()
    ]


def is_numeric(series: pd.Series) -> bool:
    values = series.dropna()
    return bool(len(values)) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


def figure_html(fig: go.Figure, div_id: str) -> str:
    fig.update_layout(template="plotly_white")
    if not fig.layout.margin.t:
        fig.update_layout(margin={"t": 60, "l": 60, "r": 30, "b": 50})
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            include_mathjax=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
    )


def best_over_time(done: pd.DataFrame) -> go.Figure:
    import plotly.graph_objects as go

    ordered = done.sort_values("finished_at", kind="stable")
    fig = go.Figure()
    for library, part in ordered.groupby("library", sort=True):
        fig.add_trace(
            go.Scatter(
                x=part["finished_at"],
                y=part["score"],
                mode="markers",
                name=str(library),
                marker={"size": 6, "opacity": 0.6},
                text=part["trial_id"],
            )
        )
    fig.add_trace(
        go.Scatter(
            x=ordered["finished_at"],
            y=ordered["score"].cummax(),
            mode="lines",
            line={"shape": "hv", "width": 3, "color": "black"},
            name="best so far",
        )
    )
    fig.update_layout(title="Best score over time", xaxis_title="finished at (UTC)")
    return fig


def distribution(done: pd.DataFrame, metric: str) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for library, part in done.groupby("library", sort=True):
        fig.add_trace(
            go.Box(y=part["score"], name=str(library), boxpoints="all", jitter=0.4, pointpos=0)
        )
    fig.update_layout(title="Score distribution per library", yaxis_title=metric)
    return fig


def score_vs_params(library: str, part: pd.DataFrame, params: list[str], metric: str) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = min(3, len(params))
    rows = -(-len(params) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[p.removeprefix(PARAM_PREFIX) for p in params],
        vertical_spacing=0.3 / rows if rows > 1 else 0.1,
    )
    for i, column in enumerate(params):
        numeric = is_numeric(part[column])
        x = (
            part[column]
            if numeric
            else part[column].map(lambda v: "(absent)" if v is None or v != v else str(v))
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=part["score"],
                mode="markers",
                marker={"size": 6, "opacity": 0.7},
                showlegend=False,
                text=part["trial_id"],
                name=column.removeprefix(PARAM_PREFIX),
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
        if numeric and part[column].dropna().gt(0).all() and _spread(part[column]) > 50:
            fig.update_xaxes(type="log", row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(title=f"{library}: {metric} against each parameter", height=320 * rows + 80)
    return fig


def _spread(series: pd.Series) -> float:
    values = series.dropna().astype(float)
    return float(values.max() / values.min()) if len(values) and values.min() > 0 else 0.0


def encode(part: pd.DataFrame, params: list[str]) -> tuple[Any, list[dict[str, Any]]]:
    """Parameters as numbers (categories as codes, absent as its own code), and plotly
    dimension specs for them."""
    import numpy as np

    columns = []
    dims: list[dict[str, Any]] = []
    for column in params:
        series = part[column]
        label = column.removeprefix(PARAM_PREFIX)
        if is_numeric(series):
            values = series.astype(float)
            fill = float(values.min()) - (float(values.max() - values.min()) or 1.0) * 0.1
            encoded = values.fillna(fill).to_numpy()
            dims.append({"label": label, "values": encoded})
        else:
            text = series.map(lambda v: "(absent)" if v is None or v != v else str(v))
            categories = sorted(text.unique())
            codes = text.map({c: i for i, c in enumerate(categories)}).to_numpy(dtype=float)
            encoded = codes
            dims.append(
                {
                    "label": label,
                    "values": codes,
                    "tickvals": list(range(len(categories))),
                    "ticktext": categories,
                }
            )
        columns.append(encoded)
    return np.column_stack(columns), dims


def parallel(library: str, part: pd.DataFrame, params: list[str], metric: str) -> go.Figure:
    import plotly.graph_objects as go

    _, dims = encode(part, params)
    dims.append({"label": metric, "values": part["score"].to_numpy()})
    fig = go.Figure(
        go.Parcoords(
            line={"color": part["score"], "colorscale": "Viridis", "showscale": True},
            dimensions=dims,
        )
    )
    # Parcoords puts axis labels above the plot area: room for them under the title.
    fig.update_layout(
        title=f"{library}: parallel coordinates (colour = {metric})", margin={"t": 110}
    )
    return fig


def importance(library: str, part: pd.DataFrame, params: list[str]) -> go.Figure | str:
    import numpy as np
    import plotly.graph_objects as go
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    if len(part) < _MIN_TRIALS_FOR_IMPORTANCE:
        need = _MIN_TRIALS_FOR_IMPORTANCE
        return f"{library}: {len(part)} finished trials; importance needs at least {need}."
    if part["score"].nunique() < 2:
        return f"{library}: every trial has the same score; no parameter matters."
    sample = part.sample(n=min(len(part), _MAX_SURROGATE_ROWS), random_state=0)
    X, _ = encode(sample, params)
    y = sample["score"].to_numpy(dtype=float)
    forest = RandomForestRegressor(n_estimators=200, random_state=0, n_jobs=1).fit(X, y)
    result = permutation_importance(forest, X, y, n_repeats=10, random_state=0, n_jobs=1)
    order = np.argsort(result.importances_mean)
    labels = [params[i].removeprefix(PARAM_PREFIX) for i in order]
    fig = go.Figure(
        go.Bar(
            x=result.importances_mean[order],
            y=labels,
            orientation="h",
            error_x={"type": "data", "array": result.importances_std[order]},
        )
    )
    fig.update_layout(
        title=f"{library}: parameter importance (drop in surrogate R² when shuffled)",
        height=120 + 40 * len(labels),
        xaxis_title=f"importance (surrogate R² on the trials: {forest.score(X, y):.2f})",
    )
    return fig
