"""What `status`, `top`, the progress line and the report show of a study's adaptive searches,
read from an in-memory store that holds a TPE and an ASHA search's plan and results."""

from __future__ import annotations

import html
import json
import re

import pytest
from tunefleet import cli
from tunefleet.cli import common
from tunefleet.client import Client
from tunefleet.display import describe
from tunefleet.report import build_report
from tunefleet_runtime.settings import ClientSettings
from typer.testing import CliRunner

from tests.support.adaptive import STUDY, adaptive_store

# What the study holds (tests/support/adaptive.py): xgboost's grid point (0.9) and 20 TPE trials
# (best 0.949998, the tenth); lightgbm's ASHA: 27 configurations at 10 rounds, 9 at 30, 3 at
# 90 of which 2 have a result (30 leaves: 0.94, the best).
TPE_BEST = "000000000000000000000010"
ASHA_BEST = "00000000000000000000003b"
WIDE = {"COLUMNS": "200"}  # rich wraps at the terminal's width


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Client:
    settings = ClientSettings(rabbitmq_url="amqp://u:p@nowhere:1/", mongodb_url="mongodb://x:1")
    found = Client(settings, store=adaptive_store())
    monkeypatch.setattr(common, "client", lambda: found)
    return found


def test_status_shows_each_librarys_search(client: Client) -> None:
    shown = CliRunner().invoke(cli.app, ["status", STUDY], env=WIDE)
    assert shown.exit_code == 0, shown.output
    lines = {
        line.split()[0]: line.split(maxsplit=1)[1].strip() for line in shown.stdout.splitlines()
    }
    assert lines["xgboost"] == (
        "grid+tpe: 20 of 20 tpe trials decided, 20 finished; 21 finished in all; "
        f"best roc_auc 0.949998 (trial {TPE_BEST})"
    )
    assert lines["lightgbm"] == (
        "asha: 39 of 39 asha trials decided, 38 finished (27 at 10, 9 at 30, 2 at 90 rounds); "
        f"best roc_auc 0.940000 (trial {ASHA_BEST})"
    )
    as_json = CliRunner().invoke(cli.app, ["status", STUDY, "--json"])
    searches = json.loads(as_json.stdout)["searches"]
    assert searches[1] == {
        "library": "lightgbm",
        "strategy": "asha",
        "finished": 38,
        "best_score": 0.94,
        "best_trial_id": ASHA_BEST,
        "adaptive": "asha",
        "n_trials": 39,
        "decided": 39,
        "adaptive_finished": 38,
        "rungs": [10, 30, 90],
        "rung_finished": [27, 9, 2],
    }


def test_top_names_the_search_and_rung_of_each_trial(client: Client) -> None:
    shown = CliRunner().invoke(cli.app, ["top", STUDY, "--by-library", "-n", "3", "--json"])
    assert shown.exit_code == 0, shown.output
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(r["library"], r["search"], r["score"]) for r in rows] == [
        ("xgboost", "tpe", 0.949998),
        ("xgboost", "tpe", 0.949772),
        ("xgboost", "tpe", 0.949676),
        ("lightgbm", "asha 90", 0.94),
        ("lightgbm", "asha 90", 0.936667),
        ("lightgbm", "asha 30", 0.92),
    ]
    table = CliRunner().invoke(cli.app, ["top", STUDY, "-n", "40"], env=WIDE)
    grid = [line for line in table.stdout.splitlines() if "│ max_depth=3 " in line]
    assert len(grid) == 1 and re.search(r"│ xgboost\s+│ grid\s+│ 0\.900000 │", grid[0])


def test_the_progress_line_says_how_far_adaptive_searches_decided(client: Client) -> None:
    line = describe(client.snapshot(STUDY))
    assert "xgboost tpe 20/20 decided, lightgbm asha 39/39 decided" in line


def test_the_report_shows_history_rungs_and_importance(client: Client) -> None:
    page = build_report(client, STUDY)
    found = re.search(r"data-report='([^']*)'", page)
    assert found is not None
    summary = json.loads(html.unescape(found.group(1)))
    # best over time, distribution; per library: history, score vs params, parallel
    # coordinates, the search's importance, a contour of its most important pairs; xgboost
    # also its importance over all (the grid's trial is not TPE's), lightgbm the promotions.
    assert summary["plots"] == 14
    assert page.count("The most important numeric parameters in pairs") == 2  # the contours
    assert "xgboost: optimisation history (tpe)" in page
    assert "lightgbm: optimisation history (asha)" in page
    assert "lightgbm: ASHA, every configuration" in page
    cells = re.findall(r"<tr>((?:<td[^>]*>[^<]*(?:<code>[^<]*</code>)?</td>)+)</tr>", page)
    rungs = [re.findall(r">([^<>]+)<", row) for row in cells if row.startswith('<td class="num">')]
    assert [row[:6] for row in rungs[:3]] == [
        ["0", "10", "27", "27", "0", "9"],
        ["1", "30", "9", "9", "0", "3"],
        ["2", "90", "3", "2", "0", "-"],
    ]
    assert "2 configurations reached the top rung (90 rounds)" in page
    assert (
        '<td>num_leaves=30</td><td class="num">0.900000</td><td class="num">0.920000</td>' in page
    )
    assert "Over each configuration&#x27;s result at its highest rung (27)" in page
    assert "Over its trials (20)" in page
