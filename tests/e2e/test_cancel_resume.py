"""Cancel and resume through the CLI, against the three services as separate processes."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml
from tunefleet.cli import app
from tunefleet.client import Client
from tunefleet_dev.devservices import Pipeline
from tunefleet_publisher.planner import expand
from tunefleet_runtime.broker import connect, topology_of
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_runtime.validation import parse_spec

from tests.support.cli import cli, runner
from tests.support.studies import noop_spec
from tests.support.waiting import wait_until


def until(predicate: Callable[[], bool], timeout: float = 120, what: str = "") -> None:
    wait_until(predicate, what=what, timeout=timeout, interval=0.2)


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
    assert lines[0] == {
        "study_id": study,
        "revision": 1,
        "n_trials": 30,
        "republished": 30 - stored,
        "kept": stored,
        "kept_failed": 0,
        "superseded": 0,
    }
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

    # The worker drains the study's queued trials without running them; the one it had in
    # hand may still finish. Then nothing is queued and every trial that started has its
    # result: nothing more can run.
    until(lambda: trials_queue_depth(settings) == 0, what="the queue to drain")

    def started_have_results() -> bool:
        started = {d["trial_id"] for d in db.starts.find({"study_id": study}, {"trial_id": 1})}
        stored = {d["_id"] for d in db.trials.find({"study_id": study}, {"_id": 1})}
        return started <= stored

    until(started_have_results, what="the trial in hand to finish")
    after_cancel = db.trials.count_documents({})
    assert after_cancel < 20
    assert db.starts.count_documents({"study_id": study}) == after_cancel  # none skipped ran

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


def test_resume_with_a_fixed_spec_runs_only_what_is_missing(
    service_env: dict[str, str], pipeline: Pipeline, settings: ClientSettings, tmp_path: Path
) -> None:
    db = connect_store(settings)
    client = Client(settings)
    # A typo in the grid (9.0 for 0.5), and one value of x too few.
    first = noop_spec("fix", 0, 0.0)
    first["search"]["noop"] = {"grid": {"score": [0.1, 0.2, 0.3, 0.4, 9.0], "x": [1, 2]}}
    pipeline.start_all(workers=1)
    study = client.submit(first)
    study.wait(progress=False, timeout_s=120)
    before = {d["_id"]: d["finished_at"] for d in db.trials.find({"study_id": study})}
    assert len(before) == 10

    fixed = noop_spec("fix", 0, 0.0)
    fixed["search"]["noop"] = {"grid": {"score": [0.1, 0.2, 0.3, 0.4, 0.5], "x": [1, 2, 3]}}
    path = tmp_path / "fixed.yaml"
    path.write_text(yaml.safe_dump(fixed), encoding="utf-8")
    result = cli("resume", study, "--spec", str(path), "--wait", "--timeout", "300", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {
        "study_id": study,
        "revision": 1,
        "n_trials": 15,
        "republished": 7,  # 0.5 for every x, and x=3 for the four scores kept
        "kept": 8,
        "kept_failed": 0,
        "superseded": 2,  # the typo's two trials
    }
    assert (lines[-1]["n_trials"], lines[-1]["done"], lines[-1]["failed"]) == (15, 15, 0)

    fixed_ids = {t.trial_id for t in expand(parse_spec(fixed), study)}
    docs = {d["_id"]: d for d in db.trials.find({"study_id": study})}
    assert set(docs) == fixed_ids | set(before)  # one document per trial of either spec
    kept, dropped = fixed_ids & set(before), set(before) - fixed_ids
    assert len(kept) == 8 and len(dropped) == 2
    # What the fix kept did not run again: the same result, one start, now in revision 1.
    assert all(docs[t]["finished_at"] == before[t] and docs[t]["revision"] == 1 for t in kept)
    assert db.starts.count_documents({"trial_id": {"$in": sorted(kept)}}) == 8
    assert all(docs[t]["revision"] == 0 and docs[t]["params"]["score"] == 9.0 for t in dropped)

    # The study is the fixed one under its old id; every read sees the fixed trials only.
    doc = db.studies.find_one({"_id": study})
    assert doc is not None and doc["revision"] == 1 and doc["n_trials"] == 15
    assert doc["spec"] == parse_spec(fixed).model_dump(mode="json")
    top = [json.loads(line) for line in cli("top", study, "-n", "1", "--json").stdout.splitlines()]
    assert top[0]["score"] == 0.5
    frame = client.results(study)
    assert len(frame) == 15 and 9.0 not in set(frame["param_score"])
    shown = json.loads(cli("show", sorted(dropped)[0], "--json").stdout)
    assert shown["superseded"] is True and shown["params"]["score"] == 9.0
    assert "nothing to resume" in cli("resume", study, "--spec", str(path)).stdout
    # A spec of another name is another study, not a fix: refused, nothing published.
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(yaml.safe_dump({**fixed, "name": "other"}), encoding="utf-8")
    refused = runner.invoke(app, ["resume", study, "--spec", str(renamed)])
    assert refused.exit_code == 2 and "'other'" in refused.output and "submit" in refused.output
    assert db.studies.find_one({"_id": study})["revision"] == 1  # type: ignore[index]

    # A fix of how trials are scored (here the folds) keeps no result: all of them run again.
    refolded = {**fixed, "cv": {"folds": 3, "seed": 5}}
    path.write_text(yaml.safe_dump(refolded), encoding="utf-8")
    result = cli("resume", study, "--spec", str(path), "--wait", "--timeout", "300", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert (lines[0]["revision"], lines[0]["republished"], lines[0]["kept"]) == (2, 15, 0)
    assert lines[0]["superseded"] == 15 and lines[-1]["done"] == 15
    assert {len(d.fold_scores) for d in client.trials(study)} == {3}


def test_resume_failed_reruns_trials_once_the_environment_is_fixed(
    service_env: dict[str, str], pipeline: Pipeline, settings: ClientSettings, tmp_path: Path
) -> None:
    db = connect_store(settings)
    data = tmp_path / "data"
    data.mkdir()
    spec = noop_spec("env-fix", 3, 0.0)
    spec["dataset"] = {"kind": "file", "path": "rows.csv", "target": "y"}
    pipeline.start_all(workers=1, TUNEFLEET_DATA_ROOTS=str(data))
    study = Client(settings).submit(spec)
    # The workers cannot find the file: every trial fails, and the study ends.
    status = study.wait(progress=False, timeout_s=120)
    assert (status.done, status.failed) == (0, 3)
    listed = [json.loads(line) for line in cli("studies", "--json").stdout.splitlines()]
    assert [(row["state"], row["best_score"]) for row in listed] == [("complete", None)]
    # A failed trial has a result: a plain resume has nothing to do, and says how to rerun.
    said = " ".join(cli("resume", study).stdout.split())  # as rich wrapped it, unwrapped
    assert "nothing to resume" in said and "3 failed: --failed runs them again" in said

    rows = "\n".join(f"{i},{i % 2}" for i in range(20))
    (data / "rows.csv").write_text(f"x,y\n{rows}\n", encoding="utf-8")
    result = cli("resume", study, "--failed", "--wait", "--timeout", "300", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {
        "study_id": study,
        "revision": 1,
        "n_trials": 3,
        "republished": 3,
        "kept": 0,
        "kept_failed": 0,
        "superseded": 0,
    }
    assert (lines[-1]["done"], lines[-1]["failed"]) == (3, 0)
    docs = list(db.trials.find({"study_id": study}))
    assert len(docs) == 3
    assert all(d["status"] == "done" and d["revision"] == 1 and d["reason"] is None for d in docs)
