"""`tunefleet submit` refuses bad specs in one line and publishes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_contract.topology import Topology
from tunefleet_runtime.settings import ClientSettings

from tests.support.broker import queue_depth

# The installed console script, exactly what a user runs.
TUNEFLEET = Path(sys.executable).parent / "tunefleet"

GOOD = """\
name: cli
dataset: iris
search:
  xgboost:
    fixed: {n_estimators: 5}
    grid: {max_depth: [2, 3]}
"""


def tunefleet(settings: ClientSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RABBITMQ_URL": str(settings.rabbitmq_url),
        "MONGODB_URL": str(settings.mongodb_url),
        "TUNEFLEET_NAMESPACE": settings.tunefleet_namespace,
        "MONGODB_DATABASE": settings.mongodb_database,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(TUNEFLEET), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dataset: iris\nsearch: {xgboost: {grid: {max_depth: [2, 3]}\n", "not valid yaml"),
        (GOOD.replace("xgboost", "sklearn_gbm"), "sklearn_gbm: unknown library"),
        ("metric: rocauc\n" + GOOD, "metric: unknown scikit-learn scorer 'rocauc'"),
        (GOOD.replace("[2, 3]", "[2, three]"), "xgboost.grid.max_depth: expected int, got 'three'"),
    ],
    ids=["malformed", "unknown-library", "unknown-metric", "wrong-type"],
)
def test_bad_spec_one_line_error_nothing_published(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    tmp_path: Path,
    text: str,
    expected: str,
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    result = tunefleet(settings, "submit", str(spec))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert queue_depth(channel, topology.studies_queue) == 0


def test_good_spec_is_published_once(
    settings: ClientSettings, channel: BlockingChannel, topology: Topology, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD)
    result = tunefleet(settings, "submit", str(spec))
    assert result.returncode == 0, result.stderr
    # No planner runs here: the count is the spec's upper bound until one registers it.
    assert "submitted cli-" in result.stdout and "(at most 2 trials" in result.stdout
    assert queue_depth(channel, topology.studies_queue) == 1


def test_missing_configuration_is_named(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD)
    env = {k: v for k, v in os.environ.items() if k not in {"RABBITMQ_URL", "MONGODB_URL"}}
    result = subprocess.run(
        [str(TUNEFLEET), "submit", str(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "RABBITMQ_URL" in result.stderr and "MONGODB_URL" in result.stderr
