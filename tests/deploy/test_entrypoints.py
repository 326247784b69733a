"""The pods' command lines and environment, run here against the local test services.

The closest this machine gets to running the pods: each service starts from exactly the
`command` and environment its rendered Deployment gives it (ConfigMaps and Secrets resolved),
with only the addresses, the per-test namespace and the metrics port substituted. The probes'
endpoints must answer and a study must be stored.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tunefleet.client import Client
from tunefleet.devservices import Services, free_port
from tunefleet.settings import ClientSettings

from .conftest import SERVICES, container_env, find

pytestmark = pytest.mark.services

SPEC = {
    "name": "entrypoints",
    "dataset": "iris",
    "search": {"noop": {"grid": {"score": [0.25, 0.75]}}},
}


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), ""
    except OSError:
        return 0, ""


def _pod_spec(rendered: dict[str, list[dict[str, Any]]], service: str) -> dict[str, Any]:
    deployment = find(rendered["base"], "Deployment", service)
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


@pytest.fixture
def pods(
    rendered: dict[str, list[dict[str, Any]]],
    services: Services,
    isolation: dict[str, str],
    tmp_path: Path,
) -> Iterator[dict[str, tuple[subprocess.Popen[bytes], int, dict[str, Any]]]]:
    local = {
        "RABBITMQ_URL": services.rabbitmq_url,
        "MONGODB_URL": services.mongodb_url,
        "TUNEFLEET_DATA_ROOTS": str(tmp_path),
        **isolation,
    }
    started: dict[str, tuple[subprocess.Popen[bytes], int, dict[str, Any]]] = {}
    try:
        for service in ("collector", "publisher", "worker"):
            container = _pod_spec(rendered, service)
            command = list(container["command"])
            assert command[0] == "python", "the images put their venv's python first on PATH"
            command[0] = sys.executable
            env = container_env(rendered["base"], service)
            port = free_port()
            overrides = {**local, "TUNEFLEET_METRICS_PORT": str(port)}
            process_env = {
                name: overrides.get(name, value if value is not None else f"{service}-pod-0")
                for name, value in env.items()
            }
            # Nothing from this test process leaks in: the manifest's variables, PATH, HOME.
            process_env |= {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
            log = (tmp_path / f"{service}.log").open("wb")
            proc = subprocess.Popen(command, env=process_env, stdout=log, stderr=subprocess.STDOUT)
            started[service] = (proc, port, container)
        yield started
    finally:
        for proc, _, _ in started.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _until(predicate: Any, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _metric(port: int, name: str) -> float:
    _, text = _get(port, "/metrics")
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_services_start_from_the_manifests_and_process_a_study(
    pods: dict[str, tuple[subprocess.Popen[bytes], int, dict[str, Any]]],
    settings: ClientSettings,
    tmp_path: Path,
) -> None:
    for service, (proc, port, container) in pods.items():
        ready = container["readinessProbe"]["httpGet"]["path"]
        live = container["livenessProbe"]["httpGet"]["path"]

        def probes_pass(
            proc: Any = proc, port: int = port, ready: str = ready, log: str = f"{service}.log"
        ) -> bool:
            assert proc.poll() is None, (tmp_path / log).read_text()[-3000:]
            return _get(port, ready)[0] == 200

        _until(probes_pass, f"{service} to become ready")
        assert _get(port, live)[0] == 200

    client = Client(settings)
    study = client.submit(SPEC)
    _until(lambda: len(client.trials(str(study))) == 2, "both trials to be stored")
    trials = client.trials(str(study))
    assert sorted(t["score"] for t in trials) == [0.25, 0.75]
    assert {t["status"] for t in trials} == {"done"}

    assert _metric(pods["publisher"][1], "tunefleet_trials_published_total") == 2
    assert _metric(pods["worker"][1], "tunefleet_trials_started_total") == 2
    assert _metric(pods["worker"][1], 'tunefleet_trials_finished_total{status="done"}') == 2
    assert _metric(pods["collector"][1], "tunefleet_write_batch_size_count") >= 1
    assert _metric(pods["worker"][1], "tunefleet_broker_connected") == 1

    for service, (proc, _, _) in pods.items():
        proc.terminate()
        assert proc.wait(60) == 0, f"{service} did not stop cleanly on SIGTERM"
    assert set(pods) == set(SERVICES)
