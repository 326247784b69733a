"""The CLI's contract with scripts: exit codes, one-line errors, --json, --help everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tunefleet.cli import app
from tunefleet_dev.devservices import Pipeline
from tunefleet_runtime.broker import connect, topology_of
from tunefleet_runtime.settings import ClientSettings
from typer.testing import CliRunner

from tests.support.waiting import wait_until

runner = CliRunner()

COMMANDS = [
    "submit",
    "status",
    "top",
    "show",
    "results",
    "export",
    "report",
    "cancel",
    "resume",
    "studies",
    "dead-letters",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_missing_configuration_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RABBITMQ_URL", raising=False)
    monkeypatch.delenv("MONGODB_URL", raising=False)
    result = runner.invoke(app, ["studies"])
    assert result.exit_code == 2
    assert "RABBITMQ_URL" in result.stderr and "MONGODB_URL" in result.stderr


def test_invalid_spec_publishes_nothing(
    service_env: dict[str, str], settings: ClientSettings, tmp_path: Path
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "dataset: iris\nsearch:\n  xgboost:\n    random:\n      n_trials: 5\n"
        "      space: {max_depth: {uniform: [2, 6]}}\n"
    )
    result = runner.invoke(app, ["submit", str(spec)])
    assert result.exit_code == 2
    assert "max_depth: an integer parameter; use int: [low, high]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    connection, channel = connect(settings, retry_for_s=10)
    queue = topology_of(settings).studies_queue
    assert channel.queue_declare(queue, passive=True).method.message_count == 0
    connection.close()


def test_unknown_study_and_trial(service_env: dict[str, str]) -> None:
    for args in (["status", "nope"], ["top", "nope"], ["export", "nope"], ["cancel", "nope"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, args
        assert result.stderr.strip() == "error: no study 'nope'"
    assert runner.invoke(app, ["show", "abc"]).exit_code == 2
    missing = runner.invoke(app, ["show", "0123456789abcdef01234567"])
    assert missing.exit_code == 1 and "has started or finished" in missing.stderr


def _consuming(settings: ClientSettings, *queues: str) -> bool:
    connection, channel = connect(settings, retry_for_s=10)
    try:
        return all(
            channel.queue_declare(queue, passive=True).method.consumer_count > 0 for queue in queues
        )
    finally:
        connection.close()


def test_registered_study_without_workers(
    service_env: dict[str, str], pipeline: Pipeline, tmp_path: Path, settings: ClientSettings
) -> None:
    # Publisher and collector only: the study is registered, its trials wait in the queue.
    pipeline.start("publisher")
    pipeline.start("collector")
    topology = topology_of(settings)
    wait_until(
        lambda: _consuming(settings, topology.studies_queue, topology.events_queue),
        what="the planner and the collector to consume",
    )
    spec = tmp_path / "s.yaml"
    # Two grids that both name score 0.2: three trials, where the spec alone counts four.
    spec.write_text(
        "name: idle\ndataset: iris\nsearch:\n  noop:\n"
        "    grid: [{score: [0.1, 0.2]}, {score: [0.2]}]\n"
    )
    submitted = json.loads(runner.invoke(app, ["submit", str(spec), "--json"]).stdout)
    study = submitted["study_id"]
    assert (submitted["n_trials"], submitted["at_most"]) == (2, 3)
    assert not submitted["submitted_before"]
    again = runner.invoke(app, ["submit", str(spec)])
    assert again.exit_code == 0 and "was submitted before (2 trials)" in again.stdout

    def registered() -> list[dict[str, object]]:
        result = runner.invoke(app, ["studies", "--json"])
        assert result.exit_code == 0
        return [json.loads(line) for line in result.stdout.splitlines()]

    [row] = wait_until(registered, what="the study to be registered", timeout=60, interval=0.2)
    assert row["study_id"] == study and row["state"] == "queued" and row["n_trials"] == 2
    status = json.loads(runner.invoke(app, ["status", "--json"]).stdout)  # the latest study
    assert status["study_id"] == study and status["queued"] == 2 and status["done"] == 0
    assert runner.invoke(app, ["top", study, "--json"]).stdout == ""
    exported = runner.invoke(app, ["export", study, "-f", "csv", "-o", "-"])
    assert exported.exit_code == 0 and exported.stdout.startswith("trial_id,library,status")
