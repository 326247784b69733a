"""The dashboard's HTML: one skeleton per page, filled in by `static/dashboard.js` from the JSON
API and kept current by the event stream. Nothing is loaded from outside the server (plotly.js
is served from the installed plotly package)."""

from __future__ import annotations

import html

__all__ = ["KINDS", "render"]

KINDS = ("studies", "study", "trial", "fleet", "compare")

_BODIES = {
    "studies": """
<h1>Studies</h1>
<p class="note">Tick two studies to <button id="compare" type="button" disabled>compare</button>
them.</p>
<table id="studies" class="grid"><thead><tr>
<th></th><th>name</th><th>state</th><th>progress</th><th>done</th><th>failed</th><th>running</th>
<th>best</th><th>metric</th><th>libraries</th><th>submitted (UTC)</th><th>cost</th>
</tr></thead><tbody></tbody></table>
<p class="note" id="empty" hidden>No study yet: <code>tunefleet submit spec.yaml</code>.</p>
""",
    "study": """
<h1 id="title">study</h1>
<p><code id="study-id"></code> <span id="state" class="state"></span>
<span id="cancelled" class="note"></span></p>
<div id="progress" class="progress"><div class="bar"><span></span></div><p class="counts"></p></div>
<p class="actions">
<button id="cancel" type="button">Cancel study</button>
<button id="resume" type="button">Resume study</button>
<span id="action-result" class="note"></span></p>
<h2>Best so far</h2><div id="best" class="plot"></div>
<h2>Leaderboard</h2><div id="leaderboard"></div>
<h2>Trials</h2>
<form id="filter" class="filter">
<label>library <select name="library"><option value="">all</option></select></label>
<label>status <select name="status"><option value="">all</option>
<option>done</option><option>failed</option></select></label>
<label>score &ge; <input name="min_score" size="8" inputmode="decimal"></label>
<label>search <input name="q" size="24" placeholder="id, worker, params, error"></label>
</form>
<p class="note"><span id="trials-count"></span>
<button id="prev" type="button">&larr;</button> <button id="next" type="button">&rarr;</button></p>
<table id="trials" class="grid"><thead><tr>
<th data-sort="trial_id">trial</th><th data-sort="library">library</th><th>status</th>
<th data-sort="score">score</th><th>std</th><th data-sort="fit_time_s">fit s</th>
<th data-sort="attempts">attempts</th><th data-sort="worker">worker</th>
<th data-sort="finished_at">finished (UTC)</th><th>params</th>
</tr></thead><tbody></tbody></table>
<h2>Failures</h2><div id="failures"></div>
<h2>Dead letters</h2>
<p><button id="load-dead-letters" type="button">Read the dead-letter queue</button>
<span class="note">(messages that could not be processed; left in the queue)</span></p>
<div id="dead-letters"></div>
<h2>Per library</h2><p class="note">Redrawn at most every 10 s while results come in.</p>
<div id="figures"></div>
""",
    "trial": """
<h1>Trial <code id="trial-id"></code></h1>
<p>Study <a id="study-link"></a> <span id="status" class="state"></span></p>
<div id="trial"></div>
""",
    "compare": """
<h1>Two studies</h1>
<table id="sides" class="grid"><tbody></tbody></table>
<h2>Best so far, from each study's first result</h2><div id="best" class="plot"></div>
""",
    "fleet": """
<h1>Fleet</h1>
<p class="note">Workers seen in the most recent studies: what each runs now (started, no
result yet), when it was last heard of (its latest start or result) and its results per minute
over the last 5 minutes.</p>
<table id="workers" class="grid"><thead><tr>
<th>worker</th><th>running</th><th>last seen (UTC)</th><th>idle s</th><th>per min</th>
<th>done</th><th>failed</th></tr></thead><tbody></tbody></table>
<p class="note" id="empty" hidden>No worker has started a trial of a recent study.</p>
""",
}


def render(kind: str, ident: str = "", *, writable: bool = False) -> str:
    """The page's HTML; `ident` is the study or trial it shows."""
    if kind not in _BODIES:
        raise ValueError(f"no page {kind!r}")
    token = (
        '<label class="token">token <input id="token" type="password" size="18" '
        'autocomplete="off"></label>'
        if writable
        else '<span class="note">read-only</span>'
    )
    title = f"tunefleet: {kind}" + (f" {ident}" if ident else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/dashboard.css">
<script id="plotly" src="/static/plotly.js" async></script>
<script src="/static/dashboard.js" defer></script>
</head>
<body data-page="{kind}" data-id="{html.escape(ident)}">
<nav><a href="/">Studies</a> <a href="/fleet">Fleet</a>
<span id="live" class="live" title="server-sent events">connecting</span> {token}</nav>
<main>{_BODIES[kind]}</main>
</body></html>
"""
