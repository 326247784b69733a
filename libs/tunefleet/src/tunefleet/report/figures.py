"""The report's figures of any library's trials: scores over time and per library, each
parameter against the score, parallel coordinates, parameter importance, and contour plots of
the score over pairs of the most important numeric parameters. The dashboard shows the same
figures (`tunefleet.report.library_sections`).

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
    "Importance",
    "best_over_time",
    "contour",
    "distribution",
    "encode",
    "figure_html",
    "importance",
    "is_numeric",
    "parallel",
    "param_columns",
    "ranked",
    "score_vs_params",
    "surrogate_importance",
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
# Contour plots: pairs of at most this many parameters (3 give 3 pairs), and an axis with more
# distinct values than _CONTOUR_CELLS is cut into that many bins (a random search's values).
_CONTOUR_PARAMS = 3
_CONTOUR_CELLS = 24


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


class Importance:
    """The surrogate's permutation importance of each parameter (mean and std over shuffles)."""

    def __init__(self, params: list[str], means: Any, stds: Any, r2: float) -> None:
        self.params = params
        self.means = means
        self.stds = stds
        self.r2 = r2

    def order(self) -> list[str]:
        """The parameters, most important first."""
        return [self.params[i] for i in sorted(range(len(self.params)), key=self._drop)]

    def _drop(self, i: int) -> float:
        return -float(self.means[i])


def surrogate_importance(library: str, part: pd.DataFrame, params: list[str]) -> Importance | str:
    """Permutation importance on a random-forest surrogate (the module's docstring), or why
    there is none."""
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
    return Importance(params, result.importances_mean, result.importances_std, forest.score(X, y))


def importance(
    library: str, part: pd.DataFrame, params: list[str], computed: Importance | str | None = None
) -> go.Figure | str:
    """The importance bar chart; `computed`: `surrogate_importance`'s answer, if already had."""
    import numpy as np
    import plotly.graph_objects as go

    found = surrogate_importance(library, part, params) if computed is None else computed
    if isinstance(found, str):
        return found
    order = np.argsort(found.means)
    labels = [params[i].removeprefix(PARAM_PREFIX) for i in order]
    fig = go.Figure(
        go.Bar(
            x=found.means[order],
            y=labels,
            orientation="h",
            error_x={"type": "data", "array": found.stds[order]},
        )
    )
    fig.update_layout(
        title=f"{library}: parameter importance (drop in surrogate R² when shuffled)",
        height=120 + 40 * len(labels),
        xaxis_title=f"importance (surrogate R² on the trials: {found.r2:.2f})",
    )
    return fig


def ranked(part: pd.DataFrame, params: list[str], computed: Importance | str | None) -> list[str]:
    """The numeric parameters that vary, most important first where the surrogate ranked them
    (else in their own order)."""
    order = computed.order() if isinstance(computed, Importance) else params
    return [
        p for p in order if p in part and is_numeric(part[p]) and part[p].dropna().nunique() > 1
    ]


def _cells(series: pd.Series) -> tuple[pd.Series, bool]:
    """Each trial's value on a contour axis: itself where the axis has few values, else the
    centre of its bin (geometric bins for a parameter spread over decades); and whether the
    axis is logarithmic."""
    import numpy as np
    import pandas as pd

    values = series.astype(float)
    log = bool(values.dropna().gt(0).all()) and _spread(values) > 50
    if values.nunique() <= _CONTOUR_CELLS:
        return values, log
    scale = np.log10(values) if log else values
    edges = np.linspace(float(scale.min()), float(scale.max()), _CONTOUR_CELLS + 1)
    index = np.clip(np.digitize(scale, edges[1:-1]), 0, _CONTOUR_CELLS - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    binned = pd.Series(centres[index], index=values.index)
    return (10**binned if log else binned), log


def contour(library: str, part: pd.DataFrame, params: list[str], metric: str) -> go.Figure | str:
    """The score over each pair of `params` (numeric, most important first; at most the first
    `_CONTOUR_PARAMS`): each cell is the best score of the trials in it, the gaps between
    interpolated, the trials themselves as points."""
    import itertools

    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    chosen = params[:_CONTOUR_PARAMS]
    if len(chosen) < 2:
        return f"{library}: a contour plot needs two numeric parameters that vary."
    pairs = list(itertools.combinations(chosen, 2))
    fig = make_subplots(
        rows=1,
        cols=len(pairs),
        horizontal_spacing=0.1,
        subplot_titles=[
            f"{y.removeprefix(PARAM_PREFIX)} against {x.removeprefix(PARAM_PREFIX)}"
            for x, y in pairs
        ],
    )
    low, high = float(part["score"].min()), float(part["score"].max())
    for col, (x, y) in enumerate(pairs, 1):
        rows = part[[x, y, "score"]].dropna()
        xs, xlog = _cells(rows[x])
        ys, ylog = _cells(rows[y])
        best = rows.assign(cx=xs, cy=ys).groupby(["cy", "cx"])["score"].max().unstack("cx")
        grid = [[None if v != v else float(v) for v in row] for row in best.to_numpy()]
        fig.add_trace(
            go.Contour(
                x=[float(v) for v in best.columns],
                y=[float(v) for v in best.index],
                z=grid,
                zmin=low,
                zmax=high,
                connectgaps=True,
                colorscale="Viridis",
                showscale=col == 1,
                colorbar={"title": {"text": metric}},
                hovertemplate=f"{x.removeprefix(PARAM_PREFIX)}=%{{x}}<br>"
                f"{y.removeprefix(PARAM_PREFIX)}=%{{y}}<br>best {metric}=%{{z}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=rows[x],
                y=rows[y],
                mode="markers",
                marker={"size": 4, "color": "black", "opacity": 0.4},
                text=part.loc[rows.index, "trial_id"],
                showlegend=False,
                name="trials",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(
            title_text=x.removeprefix(PARAM_PREFIX), type="log" if xlog else None, row=1, col=col
        )
        fig.update_yaxes(
            title_text=y.removeprefix(PARAM_PREFIX), type="log" if ylog else None, row=1, col=col
        )
    fig.update_layout(
        title=f"{library}: {metric} over pairs of parameters (best trial per cell)", height=440
    )
    return fig
