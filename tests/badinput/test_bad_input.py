"""Each bad input of the reliability issue, onto the live queues of a running pipeline: a clear
error (the dead letter's reason), nothing lost (failed results for the trials it carried), and
every service still running and still doing its job afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tunefleet.cli import app
from tunefleet.client import Client
from tunefleet_contract.spec import SpecError
from tunefleet_runtime.broker import topology_of
from tunefleet_runtime.deadletters import (
    REQUEUED_HEADER,
    DeadLetter,
    list_dead_letters,
    requeue_dead_letters,
)
from tunefleet_runtime.validation import parse_spec
from typer.testing import CliRunner

from tests.badinput.conftest import BadInputRun
from tests.support.badinputs import CASE_HEADER, catalogue
from tests.support.waiting import wait_until

CASE_NAMES = [case.name for case in catalogue("names-only")]


@pytest.mark.services
@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_has_its_promised_outcome(bad_run: BadInputRun, name: str) -> None:
    problems = [p for p in bad_run.outcome.problems if p.startswith(f"{name}:")]
    assert problems == []
    case = next(c for c in bad_run.cases if c.name == name)
    if case.reason is not None:
        letter = bad_run.outcome.dead_letters[name]
        topology = topology_of(bad_run.settings)
        source = {
            "studies": topology.studies_queue,
            "trials": topology.trials_queue,
            "events": topology.events_queue,
        }[case.target]
        assert letter.queue == source
        assert letter.dead_at is not None


@pytest.mark.services
def test_every_service_survives_and_still_works(bad_run: BadInputRun) -> None:
    for name, proc in bad_run.pipeline.processes.items():
        assert proc.poll() is None, f"{name} exited with {proc.returncode}"
    client = Client(bad_run.settings)
    study_id = client.submit(
        {"name": "after-bad", "dataset": "iris", "search": {"noop": {"grid": {"x": [1.0, 2.0]}}}}
    )
    status = client.wait(study_id, timeout_s=120)
    assert (status.done, status.failed) == (2, 0)


@pytest.mark.services
def test_dead_letters_command_lists_them_with_reasons(bad_run: BadInputRun) -> None:
    env = {
        "RABBITMQ_URL": str(bad_run.settings.rabbitmq_url),
        "MONGODB_URL": str(bad_run.settings.mongodb_url),
        "TUNEFLEET_NAMESPACE": bad_run.settings.tunefleet_namespace,
        "MONGODB_DATABASE": bad_run.settings.mongodb_database,
    }
    result = CliRunner().invoke(app, ["dead-letters", "--json", "--limit", "1000"], env=env)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    by_case = {r["headers"].get(CASE_HEADER): r for r in rows if CASE_HEADER in r["headers"]}
    assert "schema_version 99 is not supported" in by_case["study-schema-version"]["reason"]
    assert by_case["trial-path-traversal"]["trial_ids"]
    # Listing leaves them where they are.
    assert len(list_dead_letters(bad_run.settings, limit=None)) >= len(rows)

    human = CliRunner().invoke(app, ["dead-letters"], env=env)
    assert human.exit_code == 0
    assert "did you mean 'max_depth'" in human.stdout


@pytest.mark.services
def test_requeue_sends_a_dead_letter_back_to_its_queue(bad_run: BadInputRun) -> None:
    before = list_dead_letters(bad_run.settings, limit=None)
    wanted = "10,000,000 trials"
    assert sum(wanted in d.reason for d in before) == 1
    moved = requeue_dead_letters(bad_run.settings, reason_contains=wanted)
    assert moved == 1
    # Back on the studies queue, refused again by the publisher: one dead letter, a fresh one.

    def refused_again() -> list[DeadLetter]:
        again = [d for d in list_dead_letters(bad_run.settings, limit=None) if wanted in d.reason]
        return again if again and again[0].headers.get(REQUEUED_HEADER) == "1" else []

    again = wait_until(refused_again, what="the requeued study to be refused again", timeout=60)
    after = list_dead_letters(bad_run.settings, limit=None)
    assert len(again) == 1 and again[0].headers.get(REQUEUED_HEADER) == "1"
    assert len(after) == len(before)


def test_a_1e7_grid_is_refused_before_anything_is_published(tmp_path: Path) -> None:
    grid = {name: list(range(2, 12)) for name in ("n_estimators", "max_depth", "max_bin")} | {
        name: [0.1 * (i + 1) for i in range(10)]
        for name in ("subsample", "colsample_bytree", "colsample_bylevel", "colsample_bynode")
    }
    spec = {"dataset": "iris", "search": {"xgboost": {"grid": grid}}}
    with pytest.raises(SpecError, match="10,000,000 trials"):
        parse_spec(spec)
    assert parse_spec({**spec, "allow_large": True}).n_trials() == 10**7
    # The CLI refuses it before it connects anywhere: nothing listens on port 1.
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(spec))
    env = {"RABBITMQ_URL": "amqp://u:p@127.0.0.1:1/", "MONGODB_URL": "mongodb://127.0.0.1:1/"}
    result = CliRunner().invoke(app, ["submit", str(path)], env=env)
    assert result.exit_code == 2
    assert "10,000,000 trials" in result.output
