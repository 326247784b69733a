"""The HTML report, rendered by a real headless Chromium: every plot draws, no script errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tunefleet.client import Client
from tunefleet.report import build_report
from tunefleet_dev.devservices import Pipeline
from tunefleet_runtime.settings import ClientSettings

from tests.support.chromium import Browser, chromium_binary

# Renders in Chromium, a program of this machine: not in the tests container.
pytestmark = pytest.mark.host

# Two libraries, a grid and a seeded random search with a conditional parameter: every kind
# of plot has something to draw (numeric and categorical axes, an absent value).
SPEC: dict[str, Any] = {
    "name": "report",
    "dataset": "iris",
    "cv": {"folds": 2, "seed": 3},
    "search": {
        "noop": {
            "fixed": {"sleep_s": 0.0},
            "random": {
                "n_trials": 24,
                "space": {
                    "score": {"uniform": [0.2, 0.9]},
                    "fail": {"choice": [False, True]},
                    "x": {"loguniform": [0.01, 100.0], "when": {"fail": False}},
                },
            },
        },
        "xgboost": {
            "fixed": {"n_estimators": 5},
            "grid": {"max_depth": [2, 3], "booster": ["gbtree", "dart"]},
        },
    },
}

# Per plot: did plotly build it (data traces, full layout), and does it occupy real space with
# drawn marks in it (SVG shapes, or the WebGL canvas for parallel coordinates)?
CHECK = """
(() => [...document.querySelectorAll('.plotly-graph-div')].map(gd => {
  const box = gd.getBoundingClientRect();
  const marks = gd.querySelectorAll(
    '.scatterlayer .point, .boxlayer path, .barlayer path, .scatterlayer .js-line, '
    + '.parcoords .axis'
  ).length;
  const canvases = [...gd.querySelectorAll('canvas')].filter(c => c.width * c.height > 0);
  return {
    id: gd.id,
    types: (gd._fullData || []).map(t => t.type),
    layout: !!gd._fullLayout,
    width: box.width,
    height: box.height,
    marks: marks,
    canvases: canvases.length,
  };
}))()
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run does it)")
    return binary


def test_report_renders_in_headless_chromium(
    pipeline: Pipeline, settings: ClientSettings, tmp_path: Path, chromium: str
) -> None:
    pipeline.start_all(workers=2)
    client = Client(settings)
    study = client.submit(SPEC)
    status = study.wait(progress=False, timeout_s=300)
    assert status.n_trials == 28 and status.done + status.failed == 28
    assert status.failed > 0  # the `fail` choice: failed trials must not break any plot

    report = tmp_path / "report.html"
    report.write_text(build_report(client, study), encoding="utf-8")
    html = report.read_text(encoding="utf-8")
    assert "<script src=" not in html and "<link" not in html

    with Browser(chromium) as browser:
        browser.open(report.as_uri())
        browser.evaluate("new Promise(r => setTimeout(r, 1500))")  # plotly draws async
        plots = browser.evaluate(CHECK)
        browser.screenshot(tmp_path / "report.png")
        errors = list(browser.errors)
        fetched = [u for u in browser.requests if not u.startswith(("file:", "data:", "blob:"))]

    (tmp_path / "plots.json").write_text(json.dumps(plots, indent=1))
    assert errors == []
    assert fetched == []  # self-contained: nothing but the file itself was loaded
    # best-over-time, distribution, and per library: score-vs-params, parallel coordinates,
    # importance (noop has ~12 done trials; xgboost's 4 are too few for importance); a contour
    # for noop's two numeric parameters (xgboost has one: booster is categorical)
    types = [p["types"] for p in plots]
    assert len(plots) == 8, types
    assert sum("contour" in t for t in types) == 1
    assert sum("parcoords" in t for t in types) == 2
    assert sum("bar" in t for t in types) == 1
    for plot in plots:
        assert plot["types"] and plot["layout"], plot
        assert plot["width"] > 300 and plot["height"] > 150, plot
        if "parcoords" in plot["types"]:
            assert plot["canvases"] > 0 and plot["marks"] > 0, plot
        else:
            assert plot["marks"] > 0, plot
    assert (tmp_path / "report.png").stat().st_size > 50_000
    assert "validation curve" not in html and "<th>rounds</th>" not in html  # no early stopping
    assert "xgboost: 4 finished trials; importance needs at least 8." in html
    assert "loguniform: [0.01, 100.0]" in html and "when: {fail: false}" in html  # as written


# A TPE and an ASHA search through the real planner: the report's adaptive sections, and the
# progress and status that say how far each search has decided.
ADAPTIVE: dict[str, Any] = {
    "name": "report-adaptive",
    "dataset": "iris",
    "cv": {"folds": 2, "seed": 3},
    "search": {
        "xgboost": {
            "fixed": {"n_estimators": 5},
            "tpe": {
                "n_trials": 8,
                "max_in_flight": 2,
                "n_startup": 3,
                "space": {
                    "learning_rate": {"loguniform": [0.01, 0.5]},
                    "max_depth": {"int": [2, 5]},
                },
            },
        },
        "lightgbm": {
            "asha": {
                "n_trials": 13,
                "max_in_flight": 2,
                "min_rounds": 2,
                "max_rounds": 18,
                "eta": 3,
                "space": {
                    "learning_rate": {"loguniform": [0.01, 0.5]},
                    "num_leaves": {"int": [4, 16]},
                },
            },
        },
    },
}

# The history plot's "over time" button, pressed: the x axis becomes dates, every point stays.
OVER_TIME = """
(async () => {
  const gd = [...document.querySelectorAll('.plotly-graph-div')]
    .find(g => (g.layout.title.text || '').startsWith('lightgbm: optimisation history'));
  const points = gd.querySelectorAll('.scatterlayer .point').length;
  const button = gd.layout.updatemenus[0].buttons[1];
  await Plotly.update(gd, button.args[0], button.args[1]);
  return [gd._fullLayout.xaxis.type, points, gd.querySelectorAll('.scatterlayer .point').length];
})()
"""


def test_adaptive_report_renders_history_rungs_and_importance(
    pipeline: Pipeline, settings: ClientSettings, tmp_path: Path, chromium: str
) -> None:
    pipeline.start_all(workers=2)
    client = Client(settings)
    study = client.submit(ADAPTIVE)
    seen: list[Any] = []
    status = client.wait(study, timeout_s=300, on_progress=seen.append)
    assert (status.n_trials, status.done) == (21, 21)
    # Live progress (events, then the store) and the store's status say the same at the end.
    for searches in (seen[-1].searches, status.searches):
        xgb, lgb = searches
        assert (xgb.strategy, xgb.decided, xgb.adaptive_finished, xgb.n_trials) == (
            "tpe",
            8,
            8,
            8,
        )
        assert (lgb.strategy, lgb.decided, sum(lgb.rung_finished), lgb.rungs) == (
            "asha",
            13,
            13,
            (2, 6, 18),
        )
    # Adaptive: while it ran, progress saw decisions grow as results came, and ahead of them
    # (the planner's plan, read from the store: no event carries an adaptive decision).
    running = [p.searches[1] for p in seen if p.searches]
    assert min(s.decided for s in running) < 13
    assert any(s.decided > s.adaptive_finished for s in running)
    at_rung = status.searches[1].rung_finished
    assert at_rung[0] >= 3 and at_rung[1] >= 1  # the best third of a rung goes on

    report = tmp_path / "adaptive.html"
    report.write_text(build_report(client, study), encoding="utf-8")
    html = report.read_text(encoding="utf-8")
    with Browser(chromium) as browser:
        browser.open(report.as_uri())
        browser.evaluate("new Promise(r => setTimeout(r, 1500))")
        plots = browser.evaluate(CHECK)
        axis, before, after = browser.evaluate(OVER_TIME)
        errors = list(browser.errors)
    assert errors == []
    # best over time, distribution; xgboost: history, score vs params, parallel coordinates,
    # TPE importance, contour; lightgbm: history, promotions, ASHA importance, score vs params,
    # parallel, contour
    titles = [p["id"] for p in plots]
    assert len(plots) == 13, titles
    assert all(p["marks"] > 0 or p["canvases"] > 0 for p in plots), plots
    assert (axis, before) == ("date", after) and before == 13  # every ASHA trial scored
    first_rung = (
        f'<td class="num">0</td><td class="num">2</td><td class="num">{at_rung[0]}</td>'
        f'<td class="num">{at_rung[0]}</td><td class="num">0</td>'
    )
    assert first_rung in html
    assert "lightgbm asha: parameter importance" in html
    assert "xgboost tpe: parameter importance" in html


# Early stopping in xgboost (two trials), none in lightgbm: one validation curve plot, xgboost's.
STOPPING: dict[str, Any] = {
    "name": "report-stopping",
    "dataset": "breast_cancer",
    "metric": "roc_auc",
    "cv": {"folds": 3, "seed": 3},
    "search": {
        "xgboost": {
            "early_stopping": {"rounds": 3, "max_rounds": 40},
            "fixed": {"learning_rate": 0.3},
            "grid": {"max_depth": [2, 3]},
        },
        "lightgbm": {"fixed": {"n_estimators": 5}, "grid": {"num_leaves": [4, 8]}},
    },
}

# The validation curve plot: the drawn traces' data, then again after picking the menu's second
# trial (what the menu's button does when clicked).
CURVE = """
(async () => {
  const gds = [...document.querySelectorAll('.plotly-graph-div')]
    .filter(g => (g.layout.title.text || '').includes('validation curve'));
  const shown = gd => gd._fullData.filter(t => t.visible === true)
    .map(t => ({name: t.name, meta: t.meta, x: [...t.x], y: [...t.y]}));
  const gd = gds[0];
  const before = shown(gd);
  const lines = gd.querySelectorAll('.scatterlayer .js-line').length;
  const button = gd.layout.updatemenus[0].buttons[1];
  await Plotly.update(gd, button.args[0], button.args[1]);
  return {count: gds.length, title: gd.id, lines: lines, before: before, after: shown(gd),
          labels: gd.layout.updatemenus[0].buttons.map(b => b.label)};
})()
"""


def test_report_plots_the_validation_curve_of_a_study_with_early_stopping(
    pipeline: Pipeline, settings: ClientSettings, tmp_path: Path, chromium: str
) -> None:
    pipeline.start_all(workers=1)
    client = Client(settings)
    study = client.submit(STOPPING)
    status = study.wait(progress=False, timeout_s=300)
    assert (status.n_trials, status.done) == (4, 4)
    stopped = [r for r in client.trials(study) if r.library == "xgboost"]  # best first
    assert len(stopped) == 2 and all(r.early_stopping for r in stopped)

    report = tmp_path / "stopping.html"
    report.write_text(build_report(client, study), encoding="utf-8")
    page = report.read_text(encoding="utf-8")
    with Browser(chromium) as browser:
        browser.open(report.as_uri())
        browser.evaluate("new Promise(r => setTimeout(r, 1500))")
        plots = browser.evaluate(CHECK)
        curve = browser.evaluate(CURVE)
        errors = list(browser.errors)
    assert errors == []
    assert all(p["marks"] > 0 or p["canvases"] > 0 for p in plots), plots
    assert curve["count"] == 1  # xgboost's; lightgbm has no early stopping
    assert curve["lines"] > 0  # drawn, not only built
    for drawn, record in ((curve["before"], stopped[0]), (curve["after"], stopped[1])):
        stop = record.early_stopping
        assert stop is not None
        by_name = {t["name"]: t for t in drawn}
        assert {t["meta"] for t in drawn} == {record.trial_id}
        mean = by_name[f"mean {stop['metric']}"]
        assert mean["x"] == stop["curve_rounds"] and mean["y"] == stop["curve_mean"]
        assert by_name["best round"]["x"] == [stop["best_round"]]
        assert by_name["best round"]["y"] == [stop["best_value"]]
    assert curve["labels"] == [
        f"#{i} {r.trial_id[:10]} ({r.best_round} rounds)" for i, r in enumerate(stopped, 1)
    ]
    for record in stopped:  # the leaderboard's rounds: best / trained
        stop = record.early_stopping
        assert stop is not None
        cell = f"{stop['best_round']} / {stop['rounds_trained']}"
        assert f'<td class="num rounds">{cell}</td>' in page
