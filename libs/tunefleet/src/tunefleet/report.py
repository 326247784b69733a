"""`tunefleet report`: one self-contained HTML file per study.

plotly.js is inlined once in the page's head (no CDN, no network when opened); every figure is a
plain SVG plotly chart except the parallel-coordinates view, which plotly draws with WebGL.

Parameter importance is *permutation importance on a surrogate*: a random forest is fitted to
predict each trial's score from its parameters (categorical values as ordinal codes, a parameter
absent from a trial, e.g. a conditional one, as its own code), then each parameter's column is
shuffled and the drop in the forest's R² is that parameter's importance (mean ± std over 10
shuffles). It says which parameters the scores depend on *within the sampled region*, not
causally, and needs a handful of trials with varied parameters to mean anything.

A library with an adaptive search (TPE, ASHA) gets its optimisation history (every trial's score
in the order results came, and the best so far), for ASHA its rungs and promotions, and the
importance over that search's trials: for ASHA over each configuration's result at its highest
rung, without the rounds parameter (the rungs set it, the search did not choose it). Which trials
are the search's, and their rungs, are the plan's record (`tunefleet_contract.search.views`), as
in `status`.
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from tunefleet_contract.search.views import (
    Decisions,
    Finished,
    SearchView,
    asha_rungs,
    best_so_far,
    highest_rung,
    ladders,
    library_strategy,
    scored,
)
from tunefleet_runtime.records import PlannedTrial

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


def _utc(ts: float) -> str:
    """A time as plotly reads a date (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def _history(search: SearchView, records: list[Finished], metric: str) -> go.Figure:
    """Every scored trial of the search in the order results came (or over time: the buttons),
    ASHA's coloured by rung, and the best so far."""
    import plotly.graph_objects as go

    points = best_so_far(records)
    params = {r.trial_id: r.params for r in records}
    groups: dict[int | None, list[int]] = {}  # rung (None: TPE) -> positions in `points`
    for i, point in enumerate(points):
        groups.setdefault(search.rung(params[point.trial_id], point.trial_id), []).append(i)
    fig = go.Figure()
    by_order: list[list[Any]] = []
    by_time: list[list[Any]] = []
    for rung, members in sorted(groups.items(), key=lambda item: item[0] or 0):
        fig.add_trace(
            go.Scatter(
                x=[points[i].order for i in members],
                y=[points[i].score for i in members],
                mode="markers",
                name="trials" if rung is None else f"{search.rungs[rung]} rounds",
                marker={"size": 7, "opacity": 0.7},
                text=[points[i].trial_id for i in members],
            )
        )
        by_order.append([points[i].order for i in members])
        by_time.append([_utc(points[i].finished_at) for i in members])
    fig.add_trace(
        go.Scatter(
            x=[p.order for p in points],
            y=[p.best for p in points],
            mode="lines",
            line={"shape": "hv", "width": 3, "color": "black"},
            name="best so far",
            text=[p.best_trial_id for p in points],
        )
    )
    by_order.append([p.order for p in points])
    by_time.append([_utc(p.finished_at) for p in points])
    order_title = "trial (in the order results came)"
    fig.update_layout(
        title=f"{search.library}: optimisation history ({search.key})",
        xaxis_title=order_title,
        yaxis_title=metric,
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "x": 1.0,
                "xanchor": "right",
                "y": 1.12,
                "buttons": [
                    {
                        "label": "by trial",
                        "method": "update",
                        "args": [
                            {"x": by_order},
                            {"xaxis.title.text": order_title, "xaxis.type": "linear"},
                        ],
                    },
                    {
                        "label": "over time",
                        "method": "update",
                        "args": [
                            {"x": by_time},
                            {"xaxis.title.text": "finished at (UTC)", "xaxis.type": "date"},
                        ],
                    },
                ],
            }
        ],
    )
    return fig


def _promotions(search: SearchView, records: list[Finished], metric: str) -> go.Figure:
    """Each configuration's score at every rung it reached: a line for each one promoted."""
    import plotly.graph_objects as go

    fig = go.Figure()
    stayed: list[tuple[int, float, str]] = []
    for ladder in ladders(search, records, min_rung=0):
        scored = [
            (search.rungs[k], s, ladder.trial_ids[k])
            for k, s in ladder.scores.items()
            if s is not None
        ]
        if ladder.top == 0:
            stayed.extend(scored)
            continue
        label = _params_text(search.chosen(ladder.configuration))
        fig.add_trace(
            go.Scatter(
                x=[x for x, _, _ in scored],
                y=[s for _, s, _ in scored],
                mode="lines+markers",
                showlegend=False,
                name=label,
                text=[f"{tid}: {label}" for _, _, tid in scored],
                opacity=0.8,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[x for x, _, _ in stayed],
            y=[s for _, s, _ in stayed],
            mode="markers",
            name=f"only at {search.rungs[0]} rounds",
            marker={"color": "#bbb", "size": 6},
            text=[tid for _, _, tid in stayed],
        )
    )
    fig.update_layout(
        title=f"{search.library}: ASHA, every configuration's score per rung (lines: promoted)",
        xaxis={"type": "log", "tickvals": list(search.rungs), "title": search.rounds},
        yaxis_title=metric,
    )
    return fig


def _params_text(params: Any) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())
    )


def _rungs_table(search: SearchView, records: list[Finished], plan: list[PlannedTrial]) -> str:
    head = ["rung", search.rounds or "rounds", "configurations", "scored", "failed", "promoted"]
    head += ["best score", "best trial"]
    rows = []
    for rung in asha_rungs(search, records, plan):
        top = rung.index == len(search.rungs) - 1
        cells: list[int | str] = [rung.index, rung.rounds, rung.decided, rung.scored, rung.failed]
        cells += ["-" if top else rung.promoted]
        row = "".join(f'<td class="num">{c}</td>' for c in cells)
        row += f'<td class="num">{_num(rung.best_score, 6)}</td>'
        row += f"<td><code>{html.escape(rung.best_trial_id or '')}</code></td>"
        rows.append(f"<tr>{row}</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _top_rung_table(search: SearchView, records: list[Finished]) -> str:
    top = len(search.rungs) - 1
    reached = ladders(search, records)
    if not reached:
        return (
            f"<p class='note'>No configuration has a result at the top rung "
            f"({search.rungs[top]} rounds) yet.</p>"
        )
    head = ["configuration", *(f"{r} rounds" for r in search.rungs)]
    head.append(f"trial at {search.rungs[top]}")
    rows = []
    for ladder in reached:
        cells = [f"<td>{html.escape(_params_text(search.chosen(ladder.configuration)))}</td>"]
        cells += [f'<td class="num">{_num(ladder.scores.get(k), 6)}</td>' for k in range(top + 1)]
        cells.append(f"<td><code>{html.escape(ladder.trial_ids[top])}</code></td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (
        f"<p>{len(reached)} configuration{'s' if len(reached) > 1 else ''} reached the top rung "
        f"({search.rungs[top]} rounds); score at each rung:</p>"
        f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


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
    spec = study.spec
    status = client.status(study_id)
    frame = client.results(study_id)
    records = client.trials(study_id) if spec.adaptive else []
    plan = client.plan(study_id) if spec.adaptive else []
    decisions = Decisions(spec, plan)
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
            strategy = library_strategy(spec.search[str(library)])
            sections.append(
                f"<h2>{html.escape(str(library))} <small>({html.escape(strategy)})</small></h2>"
            )
            search = SearchView.of(spec, str(library), decisions)
            owned: set[str] = set()
            if search is not None:
                mine = search.mine(records)
                owned = {r.trial_id for r in mine}
                _adaptive_sections(search, mine, plan, part, metric, sections, figure)
            if not params:
                sections.append("<p class='note'>No parameter varies among its trials.</p>")
                continue
            figure("score vs parameters", _score_vs_params(str(library), part, params, metric))
            if len(part) >= 2:
                figure("parallel coordinates", _parallel(str(library), part, params, metric))
            if not set(part["trial_id"]) <= owned:  # else the search's importance said it all
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


def _adaptive_sections(
    search: SearchView,
    mine: list[Finished],
    plan: list[PlannedTrial],
    part: pd.DataFrame,
    metric: str,
    sections: list[str],
    figure: Callable[..., None],
) -> None:
    """A library's adaptive search: its history, ASHA's rungs, importance over its trials."""
    name = f"{search.library} {search.key}"
    sections.append(f"<h3>{html.escape(name)}: {len(mine)} of {search.n_trials} trials</h3>")
    figure("optimisation history", _history(search, mine, metric))
    if search.rungs:
        sections.append(_rungs_table(search, mine, plan))
        figure("promotions", _promotions(search, mine, metric))
        sections.append(_top_rung_table(search, mine))
        chosen = {r.trial_id for r in highest_rung(search, mine)}
        basis = "each configuration's result at its highest rung"
    else:
        chosen = {r.trial_id for r in mine if scored(r.status, r.score) is not None}
        basis = "its trials"
    trials = part[part["trial_id"].isin(chosen)].dropna(axis="columns", how="all")
    params = [c for c in _varying(trials) if c != PARAM_PREFIX + (search.rounds or "")]
    if not params:
        sections.append(f"<p class='note'>{html.escape(name)}: no parameter varies.</p>")
        return
    figure(
        f"{name}: parameter importance",
        _importance(name, trials, params),
        note=f"Over {basis} ({len(trials)}). Method: {IMPORTANCE_METHOD}.",
    )


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
