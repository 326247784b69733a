"""The report's tables: the top trials, and the refitted models (with a download link)."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tunefleet.frames import PARAM_PREFIX
from tunefleet.report.figures import param_columns

if TYPE_CHECKING:
    import pandas as pd

    from tunefleet.client import Client

__all__ = ["models_section", "num", "table"]


def table(top: pd.DataFrame, rounds: Mapping[str, str] | None = None) -> str:
    """The top trials; `rounds` (trial id -> text), where early stopping chose some, is a
    column of its own: those trials' parameters name none."""
    params = param_columns(top)
    head = [
        "#",
        "trial",
        "library",
        "score",
        "std",
        "fit s",
        *(["rounds"] if rounds else []),
        *[p.removeprefix(PARAM_PREFIX) for p in params],
    ]
    rows = []
    for rank, row in enumerate(top.to_dict(orient="records"), 1):
        cells = [
            f'<td class="num">{rank}</td>',
            f"<td><code>{html.escape(str(row['trial_id']))}</code></td>",
            f"<td>{html.escape(str(row['library']))}</td>",
            f'<td class="num">{row["score"]:.6f}</td>',
            f'<td class="num">{num(row["score_std"], 4)}</td>',
            f'<td class="num">{num(row["fit_time_s"], 2)}</td>',
        ]
        if rounds:
            shown = rounds.get(str(row["trial_id"]), "")
            cells.append(f'<td class="num rounds">{html.escape(shown)}</td>')
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


def num(value: Any, digits: int) -> str:
    return "" if value is None or value != value else f"{value:.{digits}f}"


# Models up to this size are embedded in the report (a download link that works offline);
# larger ones are named with the command that downloads them.
EMBED_MODEL_BYTES = 5_000_000


def models_section(client: Client, study_id: str) -> str:
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
