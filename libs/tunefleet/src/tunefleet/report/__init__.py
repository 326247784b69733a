"""`tunefleet report`: one self-contained HTML file per study.

plotly.js is inlined once in the page's head (no CDN, no network when opened); every figure is a
plain SVG plotly chart except the parallel-coordinates view, which plotly draws with WebGL.

The page is put together here; its parts are `figures` (any library's trials, and how
parameter importance is computed), `searches` (an adaptive search's sections) and `tables`.
Everything it shows is read through the client's API.

A library with an adaptive search (TPE, ASHA) gets its optimisation history (every trial's score
in the order results came, and the best so far), for ASHA its rungs and promotions, and the
importance over that search's trials: for ASHA over each configuration's result at its highest
rung, without the rounds parameter (the rungs set it, the search did not choose it). Which trials
are the search's, and their rungs, are the plan's record (`tunefleet_contract.search.views`), as
in `status`.

A library with early stopping gets the validation curve of its best trial (mean ± std over the
folds per round, the best round marked; a menu picks another of its best trials), and the top
trials' table the rounds chosen (best / trained).
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from tunefleet_contract.search.views import Decisions, SearchView, library_strategy

from tunefleet.client import Client
from tunefleet.frames import scored
from tunefleet.report.costs import cost_section
from tunefleet.report.curves import rounds_cell, validation_curves
from tunefleet.report.figures import (
    IMPORTANCE_METHOD,
    Importance,
    best_over_time,
    contour,
    distribution,
    figure_html,
    importance,
    parallel,
    ranked,
    score_vs_params,
    surrogate_importance,
    varying,
)
from tunefleet.report.searches import adaptive_sections
from tunefleet.report.tables import models_section, table

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go
    from tunefleet_contract.spec import StudySpec
    from tunefleet_runtime.records import PlannedTrial, TrialRecord

__all__ = ["IMPORTANCE_METHOD", "build_report", "library_sections", "write_report"]

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


def build_report(client: Client, study_id: str) -> str:
    """The report's HTML, as a string (plotly.js included)."""
    from plotly.offline import get_plotlyjs

    study = client.study_record(study_id)
    spec = study.spec
    status = client.status(study_id)
    frame = client.results(study_id)
    stopping = any(part.early_stopping is not None for part in spec.search.values())
    records = client.trials(study_id) if spec.adaptive or stopping else []
    plan = client.plan(study_id) if spec.adaptive else []
    metric = (status.metric if status else None) or spec.metric or "score"
    done = scored(frame)

    sections: list[str] = []
    figures = 0

    def figure(title: str, fig: go.Figure | str, note: str = "") -> None:
        nonlocal figures
        if isinstance(fig, str):
            sections.append(f"<h3>{html.escape(title)}</h3><p class='note'>{html.escape(fig)}</p>")
            return
        figures += 1
        body = figure_html(fig, f"plot-{figures}")
        extra = f"<p class='note'>{html.escape(note)}</p>" if note else ""
        sections.append(f"<div class='plot'>{body}</div>{extra}")

    if len(done):
        sections.append("<h2>Progress</h2>")
        figure("best over time", best_over_time(done))
        sections.append("<h2>Scores per library</h2>")
        figure("distribution", distribution(done, metric))
        library_sections(spec, done, records, plan, metric, sections, figure)
        top = done.sort_values("score", ascending=False, kind="stable").head(_TOP_N)
        top = top.dropna(axis="columns", how="all")
        # Where early stopping chose the rounds: best / trained, in its own column.
        rounds = {r.trial_id: rounds_cell(r.early_stopping) for r in records if r.early_stopping}
        sections.append(f"<h2>Top {min(_TOP_N, len(top))} trials</h2>{table(top, rounds)}")
    else:
        sections.append("<p class='note'>No trial has finished successfully yet.</p>")

    sections.append(models_section(client, study_id))
    sections.append(cost_section(client.cost(study_id)))

    counts = (
        f"{status.done} done, {status.failed} failed of {status.n_trials} trials"
        if status
        else "no results"
    )
    cancelled = f" — {status.state if status else 'cancelled'}" if study.cancelled else ""
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


def library_sections(
    spec: StudySpec,
    done: pd.DataFrame,
    records: list[TrialRecord],
    plan: list[PlannedTrial],
    metric: str,
    sections: list[str],
    figure: Callable[..., None],
) -> None:
    """Per library: its adaptive search's sections, validation curves, score vs parameters,
    parallel coordinates, importance, contour plots. `figure(title, fig_or_text, note="")`
    takes each figure (the report embeds it, the dashboard sends it as JSON); `sections` gets
    the HTML between.
    `records`: the trials' records where a search or early stopping needs them, best first."""
    decisions = Decisions(spec, plan)
    stopping = any(part.early_stopping is not None for part in spec.search.values())
    for library, part in done.groupby("library", sort=True):
        part = part.dropna(axis="columns", how="all")
        params = varying(part)
        strategy = library_strategy(spec.search[str(library)])
        sections.append(
            f"<h2>{html.escape(str(library))} <small>({html.escape(strategy)})</small></h2>"
        )
        search = SearchView.of(spec, str(library), decisions)
        owned: set[str] = set()
        if search is not None:
            mine = search.mine(records)
            owned = {r.trial_id for r in mine}
            adaptive_sections(search, mine, plan, part, metric, sections, figure)
        curves = validation_curves(str(library), records) if stopping else None
        if curves is not None:
            figure(
                f"{library}: validation curves",
                curves,
                note="Mean over the folds per round, ± one standard deviation; the star is "
                "the best round, the rounds the trial's score is computed at.",
            )
        if not params:
            sections.append("<p class='note'>No parameter varies among its trials.</p>")
            continue
        figure("score vs parameters", score_vs_params(str(library), part, params, metric))
        if len(part) >= 2:
            figure("parallel coordinates", parallel(str(library), part, params, metric))
        # One surrogate per library: its importance chart, and the order of the contour's pairs.
        # A search's own importance is shown instead (no second forest, which takes seconds on
        # a few thousand trials): its contour takes the parameters in their order.
        found: Importance | str | None = None
        if not set(part["trial_id"]) <= owned:  # else the search's importance said it all
            found = surrogate_importance(str(library), part, params)
            figure(
                f"{library}: parameter importance",
                importance(str(library), part, params, found),
                note=f"Method: {IMPORTANCE_METHOD}.",
            )
        numeric = ranked(part, params, found)
        if len(numeric) >= 2:
            figure(
                f"{library}: contour",
                contour(str(library), part, numeric, metric),
                note="The most important numeric parameters in pairs; each cell the best "
                "score of its trials (the dots), the cells between interpolated.",
            )


def write_report(client: Client, study_id: str, path: str | Path) -> int:
    """Write the report; returns its size in bytes."""
    text = build_report(client, study_id)
    Path(path).write_text(text, encoding="utf-8")
    return len(text.encode())
