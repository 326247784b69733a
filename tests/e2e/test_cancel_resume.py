"""Cancel and resume through the CLI, against the three services as separate processes."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from tunefleet.broker import connect, topology_of
from tunefleet.cli import app
from tunefleet.client import Client
from tunefleet.devservices import Pipeline
from tunefleet.settings import ClientSettings
from tunefleet.spec import parse_spec
from tunefleet.store import connect_store
from tunefleet.trials import expand
from typer.testing import CliRunner

runner = CliRunner()


def noop_spec(name: str, n: int, sleep_s: float) -> dict[str, Any]:
    return {
        "name": name,
        "dataset": "iris",
        "cv": {"folds": 2, "seed": 5},
        "search": {
            "noop": {
                "fixed": {"sleep_s": sleep_s},
                "grid": {"score": [round(0.01 * i, 2) for i in range(n)]},
            }
        },
    }


def cli(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def until(predicate: Callable[[], bool], timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def trials_queue_depth(settings: ClientSettings) -> int:
    connection, channel = connect(settings, retry_for_s=10)
    try:
        queue = topology_of(settings).trials_queue
        return int(channel.queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def test_resume_after_killing_the_whole_pipeline(
    service_env: dict[str, str], pipeline: Pipeline, settings: ClientSettings
) -> None:
    spec = parse_spec(noop_spec("resume", 30, 0.3))
    expected = {t.trial_id for t in expand(spec, spec.study_id())}
    db = connect_store(settings)
    pipeline.start_all(workers=2)
    study = Client(settings).submit(spec)
    until(lambda: db.trials.count_documents({}) >= 6, what="the first results")

    # Everything dies at once, mid-study, with trials in hand; then the queue is lost too
    # (a broker rebuilt without its data): only `resume` can bring those trials back.
    for proc in pipeline.processes.values():
        proc.send_signal(signal.SIGKILL)
    pipeline.stop_all()
    connection, channel = connect(settings, retry_for_s=10)
    channel.queue_purge(topology_of(settings).trials_queue)
    connection.close()
    stored = db.trials.count_documents({})
    assert 6 <= stored < 30

    pipeline.start_all(workers=2)
    result = cli("resume", study, "--wait", "--timeout", "300", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"study_id": study, "republished": 30 - stored}
    assert lines[-1]["done"] == 30 and lines[-1]["failed"] == 0

    ids = [d["_id"] for d in db.trials.find({"study_id": study}, {"_id": 1})]
    assert len(ids) == 30 and set(ids) == expected  # exactly one result per trial
    # Nothing left to do: a second resume publishes nothing.
    assert "nothing to resume" in cli("resume", study).stdout


def test_cancel_skips_queued_trials_and_resume_runs_only_those(
    service_env: dict[str, str], pipeline: Pipeline, settings: ClientSettings, tmp_path: Path
) -> None:
    db = connect_store(settings)
    spec = noop_spec("cancel", 20, 0.3)
    pipeline.start_all(workers=1)
    study = Client(settings).submit(spec)
    until(lambda: db.trials.count_documents({}) >= 3, what="the first results")

    out = json.loads(cli("cancel", study, "--reason", "wrong grid", "--json").stdout)
    assert out["study_id"] == study and out["cancelled"] is True
    doc = db.studies.find_one({"_id": study})
    assert doc is not None and doc["cancel_reason"] == "wrong grid" and doc["cancelled_by"]

    # The worker drains the study's queued trials without running them.
    until(lambda: trials_queue_depth(settings) == 0, what="the queue to drain")
    time.sleep(1.0)  # the trial that was in hand may still finish; nothing after it
    after_cancel = db.trials.count_documents({})
    assert after_cancel < 20
    time.sleep(1.5)
    assert db.trials.count_documents({}) == after_cancel

    status = json.loads(cli("status", study, "--json").stdout)
    assert status["cancelled"] is True and status["done"] == after_cancel
    # Watching a cancelled study ends (from the event stream's view of it) instead of hanging.
    watched = cli("status", study, "--watch", "--json").stdout.splitlines()
    assert json.loads(watched[-1])["cancelled"] is True

    result = cli("resume", study, "--wait", "--timeout", "300", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["republished"] == 20 - after_cancel
    assert lines[-1]["done"] == 20 and lines[-1]["cancelled"] is False
    assert db.trials.count_documents({"study_id": study}) == 20
    assert db.studies.find_one({"_id": study}, {"cancelled_at": 1}).get("cancelled_at") is None

    # The finished study through the read commands.
    top = [json.loads(line) for line in cli("top", study, "-n", "3", "--json").stdout.splitlines()]
    assert [row["score"] for row in top] == [0.19, 0.18, 0.17]
    shown = json.loads(cli("show", top[0]["trial_id"][:8], "--json").stdout)
    assert shown["trial_id"] == top[0]["trial_id"] and shown["params"]["score"] == 0.19
    assert [s["attempt"] for s in shown["starts"]] == [1]
    cli("export", study, "--format", "parquet", "-o", str(tmp_path / "t.parquet"))
    frame = pd.read_parquet(tmp_path / "t.parquet")
    assert len(frame) == 20
    assert sorted(frame["param_score"]) == [round(0.01 * i, 2) for i in range(20)]
    cli("report", study, "-o", str(tmp_path / "r.html"))
    assert "<h2>Top 20 trials</h2>" in (tmp_path / "r.html").read_text(encoding="utf-8")
