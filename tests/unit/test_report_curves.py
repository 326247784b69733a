"""The report's validation curves, read from an in-memory store: a library with early stopping
gets its best trial's curve (mean ± std per round, the best round marked) and a menu to pick
another trial; a library without gets none, and the top trials' table says the rounds."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from tunefleet.client import Client
from tunefleet.report import build_report
from tunefleet.report.curves import TRACES_PER_TRIAL, rounds_cell, validation_curves
from tunefleet_contract.messages import EarlyStopped, TrialResult
from tunefleet_contract.spec import StudySpec
from tunefleet_runtime.records import StudyRecord
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.memory import MemoryStore

STUDY = "stopping-000000000000"
SPEC = StudySpec.model_validate(
    {
        "name": "stopping",
        "dataset": "breast_cancer",
        "metric": "roc_auc",
        "search": {
            "xgboost": {
                "early_stopping": {"rounds": 3, "max_rounds": 50},
                "grid": {"max_depth": [2, 3, 4]},
            },
            "lightgbm": {"fixed": {"n_estimators": 20}, "grid": {"num_leaves": [4, 8]}},
        },
    }
)


def stopped(best: int, trained: int, top: float) -> EarlyStopped:
    """A curve rising to `top` at round `best`, falling after; a std that shrinks."""
    rounds = list(range(1, trained + 1))
    means = [round(top - 0.01 * abs(r - best), 6) for r in rounds]
    return EarlyStopped(
        metric="auc",
        greater_is_better=True,
        rounds=3,
        max_rounds=50,
        best_round=best,
        stop_round=trained,
        rounds_trained=trained,
        best_value=top,
        curve_rounds=rounds,
        curve_mean=means,
        curve_std=[round(0.05 / r, 6) for r in rounds],
    )


def result(trial_id: str, library: str, params: dict[str, Any], score: float, **more: Any) -> Any:
    return TrialResult(
        study_id=STUDY,
        trial_id=trial_id,
        library=library,
        params=params,
        status="done",
        metric="roc_auc",
        score=score,
        score_std=0.01,
        fit_time_s=0.5,
        finished_at=1_700_000_000.0 + score,
        worker="w1",
        **more,
    )


@pytest.fixture
def client() -> Client:
    store = MemoryStore()
    store.put_study(StudyRecord(study_id=STUDY, spec=SPEC, n_trials=5, revision=0, submitted_at=1))
    results = [
        result("a" * 24, "xgboost", {"max_depth": 2}, 0.95, early_stopping=stopped(7, 10, 0.95)),
        result("b" * 24, "xgboost", {"max_depth": 3}, 0.97, early_stopping=stopped(12, 15, 0.97)),
        result("c" * 24, "xgboost", {"max_depth": 4}, 0.96, early_stopping=stopped(3, 6, 0.96)),
        result("d" * 24, "lightgbm", {"n_estimators": 20, "num_leaves": 4}, 0.93),
        result("e" * 24, "lightgbm", {"n_estimators": 20, "num_leaves": 8}, 0.94),
    ]
    store.write_events(results)
    settings = ClientSettings(rabbitmq_url="amqp://u:p@nowhere:1/", mongodb_url="mongodb://x:1")
    return Client(settings, store=store)


def _figures(page: str) -> list[dict[str, Any]]:
    """Every plotly figure of the page, as `Plotly.newPlot(id, data, layout, ...)` is given it."""
    decoder = json.JSONDecoder()
    found = []
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        data, end = decoder.raw_decode(page, match.end())
        start = end + len(re.match(r",\s*", page[end:])[0])  # type: ignore[index]
        layout, _ = decoder.raw_decode(page, start)
        found.append({"id": match[1], "data": data, "layout": layout})
    return found


def test_the_best_trials_curve_is_shown_and_the_menu_picks_the_others(client: Client) -> None:
    page = build_report(client, STUDY)
    curves = [f for f in _figures(page) if "validation curve" in f["layout"]["title"]["text"]]
    assert len(curves) == 1  # xgboost's only: lightgbm has no early stopping
    fig = curves[0]
    assert fig["layout"]["title"]["text"] == (
        f"xgboost: validation curve of trial {'b' * 24} (#1), best round 12"
    )
    # Best first: b (0.97), c (0.96), a (0.95); four traces each, only the best's visible.
    traces = fig["data"]
    assert len(traces) == 3 * TRACES_PER_TRIAL
    assert [t["meta"] for t in traces[::TRACES_PER_TRIAL]] == ["b" * 24, "c" * 24, "a" * 24]
    assert [t.get("visible") for t in traces] == [True] * 4 + [False] * 8
    upper, lower, mean, best = traces[:4]
    expected = stopped(12, 15, 0.97)
    assert mean["x"] == expected.curve_rounds and mean["y"] == expected.curve_mean
    assert upper["y"] == pytest.approx(
        [m + s for m, s in zip(expected.curve_mean, expected.curve_std, strict=True)]  # type: ignore[operator]
    )
    assert lower["y"] == pytest.approx(
        [m - s for m, s in zip(expected.curve_mean, expected.curve_std, strict=True)]  # type: ignore[operator]
    )
    assert lower["fill"] == "tonexty"
    assert (best["x"], best["y"]) == ([12], [0.97])
    # The menu: one entry per trial, each showing its own four traces and naming it.
    buttons = fig["layout"]["updatemenus"][0]["buttons"]
    assert [b["label"] for b in buttons] == [
        f"#1 {'b' * 10} (12 rounds)",
        f"#2 {'c' * 10} (3 rounds)",
        f"#3 {'a' * 10} (7 rounds)",
    ]
    visible, layout = buttons[2]["args"]
    assert visible["visible"] == [False] * 8 + [True] * 4
    assert layout["title.text"].endswith(f"trial {'a' * 24} (#3), best round 7")
    axis = fig["layout"]["yaxis"]["title"]["text"]
    assert axis == "auc on the validation folds (higher is better)"


def test_the_top_trials_table_says_the_rounds_chosen(client: Client) -> None:
    page = build_report(client, STUDY)
    assert "<th>rounds</th>" in page
    assert f"<code>{'b' * 24}</code></td><td>xgboost</td>" in page
    cells = re.findall(r'<td class="num rounds">([^<]*)</td>', page)
    # Ranked by score: b, c, a (xgboost), then e, d (lightgbm: none chosen, empty).
    assert cells == ["12 / 15", "3 / 6", "7 / 10", "", ""]


def test_a_study_without_early_stopping_has_no_curve_nor_rounds_column(client: Client) -> None:
    store = MemoryStore()
    spec = SPEC.model_copy(update={"search": {"lightgbm": SPEC.search["lightgbm"]}})
    study = "plain-000000000000"
    store.put_study(StudyRecord(study_id=study, spec=spec, n_trials=2, revision=0, submitted_at=1))
    store.write_events(
        [
            result("d" * 24, "lightgbm", {"n_estimators": 20, "num_leaves": 4}, 0.93).model_copy(
                update={"study_id": study}
            ),
            result("e" * 24, "lightgbm", {"n_estimators": 20, "num_leaves": 8}, 0.94).model_copy(
                update={"study_id": study}
            ),
        ]
    )
    plain = Client(client.settings, store=store)
    page = build_report(plain, study)
    summary = json.loads(html.unescape(re.search(r"data-report='([^']*)'", page)[1]))  # type: ignore[index]
    assert summary["trials"] == 2 and summary["plots"] > 0
    assert "validation curve" not in page and "<th>rounds</th>" not in page


def test_no_figure_for_a_library_without_stopped_trials() -> None:
    assert validation_curves("xgboost", []) is None


def test_the_rounds_cell_says_when_the_median_rule_stopped_a_trial() -> None:
    summary = stopped(3, 5, 0.9).model_dump()
    assert rounds_cell(summary) == "3 / 5"
    assert rounds_cell({**summary, "stopped_by": "median"}) == "3 / 5 (median stop)"
    assert rounds_cell(None) == ""
