"""The dashboard's pure parts (`tunefleet.dashboard.views`, the store follower) and its HTTP
surface over an in-memory store: what it aggregates, pages and refuses."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient
from tunefleet.client import Client
from tunefleet.dashboard import create_app, views
from tunefleet.dashboard.live import Follower
from tunefleet_contract.messages import ModelStored, StudyRegistered, TrialResult, TrialsStarted
from tunefleet_contract.spec import UploadDataset
from tunefleet_runtime.records import TrialRecord, TrialStart
from tunefleet_runtime.settings import DashboardSettings
from tunefleet_runtime.store.memory import MemoryBlobStore, MemoryStore
from tunefleet_runtime.validation import parse_spec

TOKEN = "s3cret-token-for-tests"


def _record(i: int, *, score: float | None, status: str = "done", **extra: Any) -> TrialRecord:
    fields: dict[str, Any] = {
        "trial_id": f"{i:024x}",
        "study_id": "s",
        "library": "xgboost" if i % 2 else "lightgbm",
        "params": {"max_depth": i % 5, "learning_rate": 0.1 * (i % 3 + 1)},
        "status": status,
        "revision": 0,
        "finished_at": 1000.0 + i,
        "score": score,
        "worker": f"w{i % 3}",
    }
    return TrialRecord(**{**fields, **extra})


def test_spread_keeps_the_ends_and_bounds_the_count() -> None:
    assert views.spread(5, 10) == [0, 1, 2, 3, 4]
    picked = views.spread(100_000, 2000)
    assert picked[0] == 0 and picked[-1] == 99_999
    assert len(picked) == 2000 and picked == sorted(set(picked))


def test_best_so_far_steps_only_up_and_samples_the_points() -> None:
    scores = [0.5, 0.4, 0.7, 0.6, 0.9, 0.1] * 1000
    records = [_record(i, score=s) for i, s in enumerate(scores)]
    records.append(_record(99_999, score=None, status="failed"))
    best = views.best_so_far(records, limit=100)
    assert best["n"] == 6000
    assert best["steps"]["y"] == [0.5, 0.7, 0.9, 0.9]  # improvements, then on to the latest
    assert best["steps"]["x"][-1] == views.iso(1000.0 + 5999)
    assert sum(len(p["x"]) for p in best["points"].values()) <= 100
    assert set(best["points"]) == {"lightgbm", "xgboost"}


def test_leaderboard_is_the_best_per_library_best_first() -> None:
    records = [_record(i, score=i / 100) for i in range(20)]
    board = views.leaderboard(records, per_library=3)
    assert [r["score"] for r in board["xgboost"]] == [0.19, 0.17, 0.15]
    assert [r["score"] for r in board["lightgbm"]] == [0.18, 0.16, 0.14]


def test_failures_count_their_reasons() -> None:
    records = [
        _record(1, score=None, status="failed", reason="dead-lettered", error="boom"),
        _record(2, score=None, status="failed", error="ValueError: bad\ntrace"),
        _record(3, score=None, status="failed", reason="dead-lettered"),
        _record(4, score=0.5),
    ]
    failed = views.failures(records)
    assert failed["count"] == 3
    assert failed["reasons"] == [("dead-lettered", 2), ("ValueError: bad", 1)]
    assert [r["trial_id"] for r in failed["recent"]] == [f"{i:024x}" for i in (3, 2, 1)]


def test_trial_query_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="sort: 'nope'"):
        views.TrialQuery.parse({"sort": "nope"})
    with pytest.raises(ValueError, match="status: 'running'"):
        views.TrialQuery.parse({"status": "running"})
    with pytest.raises(ValueError, match="min_score: 'high'"):
        views.TrialQuery.parse({"min_score": "high"})
    with pytest.raises(ValueError, match="limit between 1 and 200"):
        views.TrialQuery.parse({"limit": "5000"})


def test_trial_table_filters_sorts_and_pages() -> None:
    records = [_record(i, score=i / 100) for i in range(30)]
    records.append(_record(40, score=None, status="failed", error="OOM"))
    everything = views.trial_table(records, views.TrialQuery.parse({"limit": "10"}))
    assert everything["total"] == 31 and everything["matched"] == 31
    assert [r["score"] for r in everything["rows"][:3]] == [0.29, 0.28, 0.27]
    last = views.trial_table(records, views.TrialQuery.parse({"offset": "30"}))
    assert [r["status"] for r in last["rows"]] == ["failed"]  # no score: last
    narrowed = views.TrialQuery.parse({"library": "xgboost", "min_score": "0.2", "order": "asc"})
    page = views.trial_table(records, narrowed)
    assert [r["score"] for r in page["rows"]] == [0.21, 0.23, 0.25, 0.27, 0.29]
    text = views.trial_table(records, views.TrialQuery.parse({"q": "oom"}))
    assert text["matched"] == 1 and text["rows"][0]["error"] == "OOM"
    by_worker = views.trial_table(records, views.TrialQuery.parse({"sort": "worker"}))
    assert by_worker["rows"][0]["worker"] == "w2"


def test_fleet_says_what_each_worker_runs_and_when_it_was_heard_of() -> None:
    starts = [
        ("s", TrialStart(f"{1:024x}", 1, "w1", 1000.0, 0)),
        ("s", TrialStart(f"{2:024x}", 1, "w2", 1001.0, 0)),
        ("s", TrialStart(f"{2:024x}", 2, "w1", 1050.0, 0)),  # redelivered to w1
    ]
    results = [_record(1, score=0.5, worker="w1", finished_at=1040.0)]
    rows = {row["worker"]: row for row in views.fleet(starts, results, now=1100.0)}
    assert [r["trial_id"] for r in rows["w1"]["running"]] == [f"{2:024x}"]
    assert rows["w2"]["running"] == []
    assert rows["w1"]["idle_s"] == 50.0 and rows["w1"]["done"] == 1
    assert rows["w2"]["last_seen"] == views.iso(1001.0)


# -- the app, over an in-memory store -------------------------------------------------------


def _study(store: MemoryStore, n: int = 3) -> str:
    spec = parse_spec(
        {
            "name": "dash-unit",
            "dataset": "iris",
            "search": {"noop": {"grid": {"score": [0.1 * (i + 1) for i in range(n)]}}},
        }
    )
    now = time.time()
    study_id = spec.study_id()
    store.write_events(
        [
            StudyRegistered(
                study_id=study_id, spec=spec, n_trials=n, submitted_at=now, published_at=now
            )
        ]
    )
    return study_id


def _result(study_id: str, i: int, status: str = "done") -> TrialResult:
    return TrialResult(
        study_id=study_id,
        trial_id=f"{i:024x}",
        library="noop",
        params={"score": 0.1 * (i + 1)},
        status=status,  # type: ignore[arg-type]
        score=0.1 * (i + 1) if status == "done" else None,
        error=None if status == "done" else "RuntimeError: planned failure",
        worker="w-unit",
        finished_at=time.time(),
    )


def _app(store: MemoryStore, token: str | None, blobs: MemoryBlobStore | None = None) -> TestClient:
    settings = DashboardSettings(
        rabbitmq_url="amqp://u:p@nowhere:1/",
        mongodb_url="mongodb://x:1",
        tunefleet_dashboard_token=SecretStr(token) if token else None,
    )
    client = Client(settings, store=store, blobs=blobs)
    return TestClient(create_app(client, settings, interval_s=0.05))


def test_the_api_aggregates_pages_and_refuses_bad_queries() -> None:
    store = MemoryStore()
    study_id = _study(store)
    store.write_events([_result(study_id, 0), _result(study_id, 1, "failed")])
    store.write_events(
        [
            TrialsStarted(
                study_id=study_id,
                trial_ids=[f"{2:024x}"],
                worker="w-unit",
                attempt=1,
                started_at=time.time(),
            )
        ]
    )
    with _app(store, None) as http:
        listed = http.get("/api/studies").json()["studies"]
        assert [(s["study_id"], s["done"], s["failed"]) for s in listed] == [(study_id, 1, 1)]
        study = http.get(f"/api/studies/{study_id}").json()
        assert study["progress"]["n_trials"] == 3 and study["progress"]["running"] == 1
        assert study["failures"]["count"] == 1 and study["cost"] is None
        failed = http.get(f"/api/studies/{study_id}/trials", params={"status": "failed"}).json()
        assert failed["matched"] == 1 and failed["total"] == 2
        bad = http.get(f"/api/studies/{study_id}/trials", params={"sort": "nope"})
        assert bad.status_code == 400 and "sort" in bad.json()["error"]
        assert http.get("/api/studies/no-such-study").status_code == 404
        fleet = http.get("/api/fleet").json()["workers"]
        assert [(w["worker"], len(w["running"])) for w in fleet] == [("w-unit", 1)]
        trial = http.get(f"/api/trials/{0:024x}").json()
        assert trial["status"] == "done" and trial["model"] is None
        assert http.get(f"/api/trials/{0:024x}/model").status_code == 404
        page = http.get(f"/studies/{study_id}")
        assert page.status_code == 200 and 'data-page="study"' in page.text
        assert "read-only" in page.text  # no token: no token box
        assert http.get("/static/dashboard.js").status_code == 200
        assert "Plotly" in http.get("/static/plotly.js").text[:5000]


def test_cancel_is_off_without_a_token_and_refused_with_a_wrong_one() -> None:
    store = MemoryStore()
    study_id = _study(store)
    with _app(store, None) as http:
        off = http.post(f"/api/studies/{study_id}/cancel")
        assert off.status_code == 403 and "TUNEFLEET_DASHBOARD_TOKEN" in off.json()["error"]
    with _app(store, TOKEN) as http:
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
            refused = http.post(f"/api/studies/{study_id}/resume", headers=headers)
            assert refused.status_code == 401, refused.text
        assert store.study(study_id).cancelled_at is None  # type: ignore[union-attr]
        assert "token" in http.get("/").text


def test_a_token_shorter_than_16_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="16"):
        DashboardSettings(
            rabbitmq_url="amqp://u:p@h:1/",
            mongodb_url="mongodb://h:1",
            tunefleet_dashboard_token="short",
        )


def test_the_follower_reports_new_studies_and_new_results_only() -> None:
    store = MemoryStore()
    follower = Follower(store)
    assert follower.poll() == []
    study_id = _study(store, n=2)
    assert follower.poll() == [study_id]
    assert follower.poll() == []
    store.write_events([_result(study_id, 0)])
    assert follower.poll() == [study_id]
    store.write_events([_result(study_id, 1)])
    assert follower.poll() == [study_id]
    assert follower.token(study_id).results == 2  # type: ignore[union-attr]
    version = follower.version
    assert follower.poll() == [] and follower.version == version  # complete: not counted again


def test_with_events_the_follower_counts_only_the_studies_they_name() -> None:
    store = MemoryStore()
    follower = Follower(store, full_every_s=3600)
    follower.events_live = True  # as if listening: only noted studies are counted
    study_id = _study(store, n=3)
    assert follower.poll() == [study_id]  # the first poll is a full one
    store.write_events([_result(study_id, 0)])
    assert follower.poll() == []  # no event of it yet: not counted
    follower.note(study_id)
    assert follower.poll() == [study_id]
    assert follower.poll(full=True) == []
    store.write_events([_result(study_id, 1)])
    assert follower.poll(full=True) == [study_id]  # the periodic full pass catches the rest


def test_a_refitted_trial_offers_its_model_in_the_native_format() -> None:
    store, blobs = MemoryStore(), MemoryBlobStore(1 << 20)
    study_id = _study(store)
    store.write_events([_result(study_id, 0)])
    blob, _ = blobs.put_bytes(b"the booster, natively", kind="model", format="ubj")
    dataset = UploadDataset(kind="upload", target="target", sha256="a" * 64, format="csv")
    stored = ModelStored(
        study_id=study_id,
        trial_id=f"{0:024x}",
        library="xgboost",
        params={"max_depth": 3},
        status="done",
        sha256=blob.sha256,
        format="ubj",
        size=blob.size,
        dataset=dataset,
        finished_at=time.time(),
    )
    store.write_events([stored])
    with _app(store, None, blobs) as http:
        trial = http.get(f"/api/trials/{0:024x}").json()
        assert trial["model"]["status"] == "done" and trial["model"]["format"] == "ubj"
        download = http.get(f"/api/trials/{0:024x}/model")
        assert download.status_code == 200 and download.content == b"the booster, natively"
        assert download.headers["content-disposition"].endswith('.ubj"')


def test_two_studies_compare_side_by_side() -> None:
    store = MemoryStore()
    first = _study(store, n=3)
    spec = parse_spec(
        {"name": "dash-other", "dataset": "iris", "search": {"noop": {"grid": {"score": [0.9]}}}}
    )
    now = time.time()
    other = spec.study_id()
    store.write_events(
        [StudyRegistered(study_id=other, spec=spec, n_trials=1, submitted_at=now, published_at=now)]
    )
    store.write_events([_result(first, 0), _result(first, 2), _result(other, 8)])
    with _app(store, None) as http:
        sides = http.get("/api/compare", params={"a": first, "b": other}).json()["studies"]
        assert [s["study_id"] for s in sides] == [first, other]
        assert sides[0]["steps"]["y"] == [pytest.approx(0.1), pytest.approx(0.3)]
        assert sides[0]["steps"]["x"][0] == 0.0
        assert sides[1]["best_by_library"]["noop"]["score"] == pytest.approx(0.9)
        missing = http.get("/api/compare", params={"a": first})
        assert missing.status_code == 400 and missing.json()["error"].startswith("b:")
        assert 'data-page="compare"' in http.get("/compare").text
