"""The locust load test, briefly: its users' results go through the broker and are stored.

A few seconds and a few users, no timing asserted: `make load` is the measurement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tunefleet_dev.devservices import Services

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_locust_results_and_studies_are_stored(services: Services, tmp_path: Path) -> None:
    report = tmp_path / "load.json"
    env = {**os.environ, **services.env(), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(REPO / "loadtest" / "locustfile.py"),
            "--headless",
            "--only-summary",
            "-u",
            "3",
            "-r",
            "3",
            "-t",
            "4s",
            "--result-rate",
            "40",
            "--batch",
            "5",
            "--submit-interval",
            "1",
            "--report",
            str(report),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(report.read_text())
    assert measured["published"] > 0
    # Every result and study a user had confirmed by the broker is in MongoDB (it may hold one
    # more batch, or one more study, confirmed as the users were stopped mid-publish).
    assert measured["stored"] >= measured["published"]
    assert measured["studies_submitted"] >= 1
    stored, submitted = measured["studies_stored"], measured["studies_submitted"]
    assert submitted <= stored <= submitted + 1
    assert measured["latency_ms"]["p50"] >= 0
