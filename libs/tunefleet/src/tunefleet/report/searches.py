"""The report's sections on a library's adaptive search: its optimisation history, and for a
search with rungs (ASHA) the rungs, the promotions and the configurations that reached the top,
and the importance over the search's own trials. Which trials are the search's, and their rungs,
are the plan's record (`tunefleet_contract.search.views`), as in `status`."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tunefleet_contract.search.history import asha_rungs, best_so_far, highest_rung, ladders
from tunefleet_contract.search.views import Finished, SearchView, scored
from tunefleet_runtime.records import PlannedTrial

from tunefleet.frames import PARAM_PREFIX
from tunefleet.report.figures import IMPORTANCE_METHOD, importance, varying
from tunefleet.report.tables import num

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["adaptive_sections"]


def _utc(ts: float) -> str:
    """A time as plotly reads a date (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def history(search: SearchView, records: list[Finished], metric: str) -> go.Figure:
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


def promotions(search: SearchView, records: list[Finished], metric: str) -> go.Figure:
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
        label = params_text(search.chosen(ladder.configuration))
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


def params_text(params: Any) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())
    )


def rungs_table(search: SearchView, records: list[Finished], plan: list[PlannedTrial]) -> str:
    head = ["rung", search.rounds or "rounds", "configurations", "scored", "failed", "promoted"]
    head += ["best score", "best trial"]
    rows = []
    for rung in asha_rungs(search, records, plan):
        top = rung.index == len(search.rungs) - 1
        cells: list[int | str] = [rung.index, rung.rounds, rung.decided, rung.scored, rung.failed]
        cells += ["-" if top else rung.promoted]
        row = "".join(f'<td class="num">{c}</td>' for c in cells)
        row += f'<td class="num">{num(rung.best_score, 6)}</td>'
        row += f"<td><code>{html.escape(rung.best_trial_id or '')}</code></td>"
        rows.append(f"<tr>{row}</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def top_rung_table(search: SearchView, records: list[Finished]) -> str:
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
        cells = [f"<td>{html.escape(params_text(search.chosen(ladder.configuration)))}</td>"]
        cells += [f'<td class="num">{num(ladder.scores.get(k), 6)}</td>' for k in range(top + 1)]
        cells.append(f"<td><code>{html.escape(ladder.trial_ids[top])}</code></td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (
        f"<p>{len(reached)} configuration{'s' if len(reached) > 1 else ''} reached the top rung "
        f"({search.rungs[top]} rounds); score at each rung:</p>"
        f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def adaptive_sections(
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
    figure("optimisation history", history(search, mine, metric))
    if search.rungs:
        sections.append(rungs_table(search, mine, plan))
        figure("promotions", promotions(search, mine, metric))
        sections.append(top_rung_table(search, mine))
        chosen = {r.trial_id for r in highest_rung(search, mine)}
        basis = "each configuration's result at its highest rung"
    else:
        chosen = {r.trial_id for r in mine if scored(r.status, r.score) is not None}
        basis = "its trials"
    trials = part[part["trial_id"].isin(chosen)].dropna(axis="columns", how="all")
    params = [c for c in varying(trials) if c != PARAM_PREFIX + (search.rounds or "")]
    if not params:
        sections.append(f"<p class='note'>{html.escape(name)}: no parameter varies.</p>")
        return
    figure(
        f"{name}: parameter importance",
        importance(name, trials, params),
        note=f"Over {basis} ({len(trials)}). Method: {IMPORTANCE_METHOD}.",
    )
