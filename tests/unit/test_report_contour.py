"""Contour plots: the score over pairs of the most important numeric parameters, one figure per
library, in the report and (through the same `library_sections`) the dashboard."""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any

import pandas as pd
import pytest
from tunefleet.client import Client
from tunefleet.report import build_report
from tunefleet.report.figures import contour, ranked, surrogate_importance
from tunefleet_contract.messages import TrialResult
from tunefleet_contract.spec import StudySpec
from tunefleet_runtime.records import StudyRecord
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.memory import MemoryStore


def _grid() -> pd.DataFrame:
    """A 4 x 3 grid of depth and rate, each point twice (a categorical parameter apart); the
    score rises with depth, barely with rate, and the `gbtree` twin is 0.1 better."""
    rows = []
    for depth, rate, booster in itertools.product(
        (2, 4, 6, 8), (0.1, 0.2, 0.3), ("dart", "gbtree")
    ):
        score = 0.5 + 0.05 * depth + 0.01 * rate + (0.1 if booster == "gbtree" else 0.0)
        rows.append(
            {
                "trial_id": f"{depth}-{rate}-{booster}",
                "library": "xgboost",
                "param_max_depth": depth,
                "param_learning_rate": rate,
                "param_booster": booster,
                "score": score,
            }
        )
    return pd.DataFrame(rows)


def _traces(fig: Any, kind: str) -> list[Any]:
    return [t for t in fig.data if t.type == kind]


def test_each_cell_is_the_best_of_its_trials_and_every_trial_is_a_point() -> None:
    frame = _grid()
    fig = contour("xgboost", frame, ["param_max_depth", "param_learning_rate"], "accuracy")
    assert not isinstance(fig, str)
    (surface,) = _traces(fig, "contour")
    assert list(surface.x) == [2.0, 4.0, 6.0, 8.0]
    assert list(surface.y) == [0.1, 0.2, 0.3]
    # z[row = rate][column = depth]: the gbtree twin, the better of each pair.
    for i, rate in enumerate((0.1, 0.2, 0.3)):
        for j, depth in enumerate((2, 4, 6, 8)):
            assert surface.z[i][j] == pytest.approx(0.6 + 0.05 * depth + 0.01 * rate)
    (points,) = _traces(fig, "scatter")
    assert len(points.x) == len(frame) == 24
    assert fig.layout.annotations[0].text == "learning_rate against max_depth"
    assert "accuracy" in fig.layout.title.text


def test_three_parameters_give_three_pairs_and_a_fourth_is_left_out() -> None:
    frame = _grid().assign(param_a=range(24), param_b=[i % 5 for i in range(24)])
    params = ["param_max_depth", "param_learning_rate", "param_a", "param_b"]
    fig = contour("xgboost", frame, params, "accuracy")
    assert not isinstance(fig, str)
    assert len(_traces(fig, "contour")) == 3
    titles = [a.text for a in fig.layout.annotations]
    assert titles == [
        "learning_rate against max_depth",
        "a against max_depth",
        "a against learning_rate",
    ]


def test_many_values_are_binned_and_a_spread_over_decades_is_logarithmic() -> None:
    n = 400
    rates = [10 ** (-3 + 3 * i / (n - 1)) for i in range(n)]  # 0.001 .. 1, all distinct
    leaves = [2 + (i * 7) % 60 for i in range(n)]
    frame = pd.DataFrame(
        {
            "trial_id": [str(i) for i in range(n)],
            "param_learning_rate": rates,
            "param_num_leaves": leaves,
            "score": [
                0.5 + 0.1 * math.log10(r) + 0.001 * leaf
                for r, leaf in zip(rates, leaves, strict=True)
            ],
        }
    )
    fig = contour("lightgbm", frame, ["param_learning_rate", "param_num_leaves"], "auc")
    assert not isinstance(fig, str)
    (surface,) = _traces(fig, "contour")
    assert 2 <= len(surface.x) <= 24, "binned, not one column per trial"
    assert min(surface.x) >= 0.001 and max(surface.x) <= 1.0
    assert fig.layout.xaxis.type == "log"
    assert fig.layout.yaxis.type != "log"  # 2..61: not spread over decades
    assert len(surface.z) == len(surface.y) and all(len(r) == len(surface.x) for r in surface.z)
    assert max(v for row in surface.z for v in row if v is not None) == pytest.approx(
        max(frame["score"])
    )


def test_the_surrogate_orders_the_pairs_and_categories_are_not_axes() -> None:
    frame = _grid()
    params = ["param_learning_rate", "param_booster", "param_max_depth"]
    found = surrogate_importance("xgboost", frame, params)
    assert not isinstance(found, str)
    assert found.order()[0] == "param_max_depth"  # the score is mostly depth
    assert ranked(frame, params, found) == ["param_max_depth", "param_learning_rate"]
    # Without a ranking (too few trials): the numeric ones in their own order.
    assert ranked(frame, params, "too few") == ["param_learning_rate", "param_max_depth"]


def test_fewer_than_two_numeric_parameters_say_why() -> None:
    answer = contour("xgboost", _grid(), ["param_max_depth"], "accuracy")
    assert isinstance(answer, str) and "two numeric parameters" in answer


STUDY = "contour-000000000000"
SPEC = StudySpec.model_validate(
    {
        "name": "contour",
        "dataset": "iris",
        "search": {
            "xgboost": {"grid": {"max_depth": [2, 4, 6], "learning_rate": [0.1, 0.3]}},
            "lightgbm": {"grid": {"boosting_type": ["gbdt", "dart"]}},
        },
    }
)


def test_the_report_has_a_contour_per_library_with_two_numeric_parameters() -> None:
    store = MemoryStore()
    store.put_study(StudyRecord(study_id=STUDY, spec=SPEC, n_trials=8, revision=0, submitted_at=1))
    results = []
    for i, (depth, rate) in enumerate(itertools.product((2, 4, 6), (0.1, 0.3))):
        params = {"max_depth": depth, "learning_rate": rate}
        results.append(_result(f"a{i:023d}", "xgboost", params, 0.8 + 0.02 * depth))
    for i, kind in enumerate(("gbdt", "dart")):
        results.append(_result(f"b{i:023d}", "lightgbm", {"boosting_type": kind}, 0.9))
    store.write_events(results)
    settings = ClientSettings(rabbitmq_url="amqp://u:p@nowhere:1/", mongodb_url="mongodb://x:1")
    page = build_report(Client(settings, store=store), STUDY)
    contours = [f for f in _figures(page) if any(t["type"] == "contour" for t in f["data"])]
    # xgboost only: lightgbm's one parameter is categorical.
    assert [f["layout"]["title"]["text"] for f in contours] == [
        "xgboost: accuracy over pairs of parameters (best trial per cell)"
    ]
    (surface,) = [t for t in contours[0]["data"] if t["type"] == "contour"]
    assert len(surface["x"]) * len(surface["y"]) == 6


def _result(trial_id: str, library: str, params: dict[str, Any], score: float) -> TrialResult:
    return TrialResult(
        study_id=STUDY,
        trial_id=trial_id,
        library=library,
        params=params,
        status="done",
        metric="accuracy",
        score=score,
        score_std=0.01,
        fit_time_s=0.5,
        finished_at=1_700_000_000.0 + score,
        worker="w1",
    )


def _figures(page: str) -> list[dict[str, Any]]:
    """Every plotly figure of the page, as `Plotly.newPlot(id, data, layout, ...)` is given it."""
    decoder = json.JSONDecoder()
    found = []
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        data, end = decoder.raw_decode(page, match.end())
        start = end + len(re.match(r",\s*", page[end:])[0])  # type: ignore[index]
        layout, _ = decoder.raw_decode(page, start)
        found.append({"data": data, "layout": layout})
    return found
