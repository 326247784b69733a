"""`tunefleet report`: one self-contained HTML file per study.

plotly.js is inlined once in the page's head (no CDN, no network when opened); every figure is a
plain SVG plotly chart except the parallel-coordinates view, which plotly draws with WebGL.

Parameter importance is *permutation importance on a surrogate*: a random forest is fitted to
predict each trial's score from its parameters (categorical values as ordinal codes, a parameter
absent from a trial, e.g. a conditional one, as its own code), then each parameter's column is
shuffled and the drop in the forest's R² is that parameter's importance (mean ± std over 10
shuffles). It says which parameters the scores depend on *within the sampled region*, not
causally, and needs a handful of trials with varied parameters to mean anything.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tunefleet.client import PARAM_PREFIX, Client

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["IMPORTANCE_METHOD", "build_report", "write_report"]

IMPORTANCE_METHOD = (
    "permutation importance (10 repeats) of a random-forest surrogate (200 trees) fitted to "
    "predict the score from the parameters"
)
# Fewer finished trials than this, and a surrogate model says nothing.
_MIN_TRIALS_FOR_IMPORTANCE = 8
# The surrogate is fitted on at most this many trials (a sample): enough for a ranking.
_MAX_SURROGATE_ROWS = 5000
_TOP_N = 20

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
.note { color: #666; font-size: 0.9em; }
.plot { margin-bottom: 1em; }
"""


def _param_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(PARAM_PREFIX)]


def _varying(frame: pd.DataFrame) -> list[str]:
    """The parameters that take more than one value (counting absent) among these trials."""
    return [
        c
        for c in _param_columns(frame)
        if frame[c].map(repr).nunique(dropna=False) > 1 and frame[c].notna().any()
    ]


def _is_numeric(series: pd.Series) -> bool:
    values = series.dropna()
    return bool(len(values)) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


def _figure_html(fig: go.Figure, div_id: str) -> str:
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


def _best_over_time(done: pd.DataFrame) -> go.Figure:
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


def _distribution(done: pd.DataFrame, metric: str) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for library, part in done.groupby("library", sort=True):
        fig.add_trace(
            go.Box(y=part["score"], name=str(library), boxpoints="all", jitter=0.4, pointpos=0)
        )
    fig.update_layout(title="Score distribution per library", yaxis_title=metric)
    return fig


def _score_vs_params(library: str, part: pd.DataFrame, params: list[str], metric: str) -> Any:
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
        numeric = _is_numeric(part[column])
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


def _encode(part: pd.DataFrame, params: list[str]) -> tuple[Any, list[dict[str, Any]]]:
    """Parameters as numbers (categories as codes, absent as its own code), and plotly
    dimension specs for them."""
    import numpy as np

    columns = []
    dims: list[dict[str, Any]] = []
    for column in params:
        series = part[column]
        label = column.removeprefix(PARAM_PREFIX)
        if _is_numeric(series):
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


def _parallel(library: str, part: pd.DataFrame, params: list[str], metric: str) -> go.Figure:
    import plotly.graph_objects as go

    _, dims = _encode(part, params)
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


def _importance(library: str, part: pd.DataFrame, params: list[str]) -> go.Figure | str:
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
    X, _ = _encode(sample, params)
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


def _table(top: pd.DataFrame) -> str:
    params = _param_columns(top)
    head = [
        "#",
        "trial",
        "library",
        "score",
        "std",
        "fit s",
        *[p.removeprefix(PARAM_PREFIX) for p in params],
    ]
    rows = []
    for rank, row in enumerate(top.to_dict(orient="records"), 1):
        cells = [
            f'<td class="num">{rank}</td>',
            f"<td><code>{html.escape(str(row['trial_id']))}</code></td>",
            f"<td>{html.escape(str(row['library']))}</td>",
            f'<td class="num">{row["score"]:.6f}</td>',
            f'<td class="num">{_num(row["score_std"], 4)}</td>',
            f'<td class="num">{_num(row["fit_time_s"], 2)}</td>',
        ]
        for p in params:
            value = row[p]
            shown = (
                ""
                if value is None or value != value
                else (f"{value:.4g}" if isinstance(value, float) else str(value))
            )
            cells.append(f"<td>{html.escape(shown)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _num(value: Any, digits: int) -> str:
    return "" if value is None or value != value else f"{value:.{digits}f}"


def build_report(client: Client, study_id: str) -> str:
    """The report's HTML, as a string (plotly.js included)."""
    from plotly.offline import get_plotlyjs

    study = client.study_record(study_id)
    spec = client.stored_spec(study_id)
    status = client.status(study_id)
    frame = client.results(study_id)
    metric = (status.metric if status else None) or spec.metric or "score"
    done = frame[(frame["status"] == "done") & frame["score"].notna()] if len(frame) else frame

    sections: list[str] = []
    figures = 0

    def figure(title: str, fig: go.Figure | str, note: str = "") -> None:
        nonlocal figures
        if isinstance(fig, str):
            sections.append(f"<h3>{html.escape(title)}</h3><p class='note'>{html.escape(fig)}</p>")
            return
        figures += 1
        body = _figure_html(fig, f"plot-{figures}")
        extra = f"<p class='note'>{html.escape(note)}</p>" if note else ""
        sections.append(f"<div class='plot'>{body}</div>{extra}")

    if len(done):
        sections.append("<h2>Progress</h2>")
        figure("best over time", _best_over_time(done))
        sections.append("<h2>Scores per library</h2>")
        figure("distribution", _distribution(done, metric))
        for library, part in done.groupby("library", sort=True):
            part = part.dropna(axis="columns", how="all")
            params = _varying(part)
            sections.append(f"<h2>{html.escape(str(library))}</h2>")
            if not params:
                sections.append("<p class='note'>No parameter varies among its trials.</p>")
                continue
            figure("score vs parameters", _score_vs_params(str(library), part, params, metric))
            if len(part) >= 2:
                figure("parallel coordinates", _parallel(str(library), part, params, metric))
            figure(
                f"{library}: parameter importance",
                _importance(str(library), part, params),
                note=f"Method: {IMPORTANCE_METHOD}.",
            )
        top = done.sort_values("score", ascending=False, kind="stable").head(_TOP_N)
        top = top.dropna(axis="columns", how="all")
        sections.append(f"<h2>Top {min(_TOP_N, len(top))} trials</h2>{_table(top)}")
    else:
        sections.append("<p class='note'>No trial has finished successfully yet.</p>")

    sections.append(_models_section(client, study_id))

    counts = (
        f"{status.done} done, {status.failed} failed of {status.n_trials} trials"
        if status
        else "no results"
    )
    cancelled = " — cancelled" if study.cancelled else ""
    # As the user wrote it: `int:` (not the field's Python name), short lists inline.
    spec_yaml = yaml.safe_dump(
        spec.model_dump(mode="json", exclude_defaults=True, by_alias=True),
        sort_keys=False,
        default_flow_style=None,
    )
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    summary = {"study_id": study_id, "plots": figures, "trials": len(frame)}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>tunefleet report: {html.escape(study_id)}</title>
<style>{_CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body data-report='{html.escape(json.dumps(summary))}'>
<h1>{html.escape(spec.name)}</h1>
<p><code>{html.escape(study_id)}</code>: {html.escape(counts)}{cancelled};
metric <b>{html.escape(metric)}</b>, {spec.cv.folds}-fold CV (seed {spec.cv.seed}).
Generated {generated}.</p>
{"".join(sections)}
<h2>Spec</h2><pre>{html.escape(spec_yaml)}</pre>
</body></html>
"""


# Models up to this size are embedded in the report (a download link that works offline);
# larger ones are named with the command that downloads them.
EMBED_MODEL_BYTES = 5_000_000


def _models_section(client: Client, study_id: str) -> str:
    stored = client.models(study_id)
    fetch = f"tunefleet model {study_id} --trial TRIAL -o PATH"
    if not stored:
        return (
            "<h2>Model</h2><p class='note'>No refitted model yet: "
            f"<code>tunefleet refit {html.escape(study_id)}</code> trains the best trial on the "
            "whole dataset and stores it.</p>"
        )
    rows = []
    for model in stored:
        if model.status != "done" or model.sha256 is None or model.size is None:
            link = f"refit failed: {html.escape(model.error or '')}"
        elif model.size <= EMBED_MODEL_BYTES:
            data = base64.b64encode(client.model_bytes(model)).decode()
            name = f"{study_id}-{model.trial_id}.{model.format}"
            link = (
                f"<a download='{html.escape(name)}' "
                f"href='data:application/octet-stream;base64,{data}'>{html.escape(name)}</a>"
            )
        else:
            link = f"<code>{html.escape(fetch.replace('TRIAL', model.trial_id))}</code>"
        rows.append(
            f"<tr><td><code>{model.trial_id}</code></td><td>{html.escape(model.library)} "
            f"{html.escape(model.library_version or '')}</td><td>{html.escape(model.format or '-')}"
            f"</td><td>{model.size or 0:,}</td><td><code>{(model.sha256 or '-')[:12]}</code></td>"
            f"<td>{link}</td></tr>"
        )
    return (
        "<h2>Model</h2><p>Refitted on the whole dataset, in the library's native format "
        f"(<code>{html.escape(fetch)}</code>; <code>Study.best_model()</code> in Python).</p>"
        "<table><tr><th>trial</th><th>library</th><th>format</th><th>bytes</th>"
        f"<th>sha256</th><th>download</th></tr>{''.join(rows)}</table>"
    )


def write_report(client: Client, study_id: str, path: str | Path) -> int:
    """Write the report; returns its size in bytes."""
    text = build_report(client, study_id)
    Path(path).write_text(text, encoding="utf-8")
    return len(text.encode())
