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
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tunefleet.client import Client
from tunefleet_dev.devservices import Services, free_port
from tunefleet_runtime.settings import ClientSettings

from tests.support.waiting import wait_until

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


@dataclass
class Pod:
    process: subprocess.Popen[bytes]
    port: int
    container: dict[str, Any]
    log: Path


@dataclass
class Pods:
    """Starts a service as its Deployment would, with only the local addresses substituted."""

    rendered: list[dict[str, Any]]
    local: dict[str, str]
    home: Path
    running: dict[str, Pod] = field(default_factory=dict)

    def start(
        self, service: str, name: str | None = None, secrets: dict[str, str] | None = None
    ) -> Pod:
        """`secrets`: values of optional Secrets the manifests leave to the operator."""
        name = name or service
        container = dict(
            find(self.rendered, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]
        )
        command = list(container["command"])
        # The images put their venv's bin first on PATH: python, or the client's `tunefleet`.
        command[0] = str(Path(sys.executable).parent / command[0])
        port = free_port()
        # The port the probes ask: the services' metrics port, the dashboard's own.
        overrides = {
            **self.local,
            "TUNEFLEET_METRICS_PORT": str(port),
            "TUNEFLEET_DASHBOARD_PORT": str(port),
        }
        env = {
            # None: a downward-API value, here the pod's name.
            key: overrides.get(key, value if value is not None else f"{name}-pod")
            for key, value in container_env(self.rendered, service).items()
        } | (secrets or {})
        # Nothing from this test process leaks in: the manifest's variables, PATH, HOME.
        env |= {"PATH": os.environ["PATH"], "HOME": str(self.home)}
        log = self.home / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.running[name] = Pod(process, port, container, log)
        return self.running[name]

    def stop_all(self) -> None:
        for pod in self.running.values():
            if pod.process.poll() is None:
                pod.process.terminate()
                try:
                    pod.process.wait(30)
                except subprocess.TimeoutExpired:
                    pod.process.kill()
                    pod.process.wait()


@pytest.fixture
def pods(
    rendered: dict[str, list[dict[str, Any]]],
    services: Services,
    isolation: dict[str, str],
    tmp_path: Path,
) -> Iterator[Pods]:
    local = {
        "RABBITMQ_URL": services.rabbitmq_url,
        "MONGODB_URL": services.mongodb_url,
        "TUNEFLEET_DATA_ROOTS": str(tmp_path),
        **isolation,
    }
    running = Pods(rendered["gke"], local, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


def _ready(pod: Pod) -> None:
    path = pod.container["readinessProbe"]["httpGet"]["path"]

    def ready() -> bool:
        assert pod.process.poll() is None, pod.log.read_text()[-3000:]
        return _get(pod.port, path)[0] == 200

    _until(ready, f"{pod.log.stem} to become ready")


def _until(predicate: Any, what: str, timeout: float = 180) -> None:
    wait_until(predicate, what=what, timeout=timeout, interval=0.2)


def _metric(port: int, name: str) -> float:
    _, text = _get(port, "/metrics")
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_services_start_from_the_manifests_and_process_a_study(
    pods: Pods, settings: ClientSettings
) -> None:
    started = {service: pods.start(service) for service in ("collector", "publisher", "worker")}
    for pod in started.values():
        _ready(pod)
        assert _get(pod.port, pod.container["livenessProbe"]["httpGet"]["path"])[0] == 200

    client = Client(settings)
    study = client.submit(SPEC)
    _until(lambda: len(client.trials(str(study))) == 2, "both trials to be stored")
    trials = client.trials(str(study))
    assert sorted(t.score or 0 for t in trials) == [0.25, 0.75]
    assert {t.status for t in trials} == {"done"}

    assert _metric(started["publisher"].port, "tunefleet_trials_published_total") == 2
    worker = started["worker"].port
    assert _metric(worker, "tunefleet_trials_started_total") == 2
    assert _metric(worker, 'tunefleet_trials_finished_total{status="done"}') == 2
    assert _metric(started["collector"].port, "tunefleet_write_batch_size_count") >= 1
    assert _metric(worker, "tunefleet_broker_connected") == 1

    for service, pod in started.items():
        pod.process.terminate()
        assert pod.process.wait(60) == 0, f"{service} did not stop cleanly on SIGTERM"
    assert set(started) == set(SERVICES)


def test_a_preempted_worker_hands_its_trial_back_and_another_finishes_it(
    pods: Pods, settings: ClientSettings
) -> None:
    """SIGTERM with the manifests' grace period: a trial longer than it is handed back (a
    preemption, not a redelivery), the process exits by itself (before the kubelet's SIGKILL
    would come), and another worker finishes it."""
    grace_s = float(container_env(pods.rendered, "worker")["TUNEFLEET_GRACE_PERIOD_S"] or 0)
    for service in ("collector", "publisher"):
        _ready(pods.start(service))
    first = pods.start("worker", "worker-a")
    _ready(first)
    client = Client(settings)
    spec = {
        "name": "preempted",
        "dataset": "iris",
        "search": {"noop": {"grid": {"score": [0.5], "sleep_s": [grace_s + 2]}}},
    }
    study = client.submit(spec)
    _until(lambda: _metric(first.port, "tunefleet_trials_started_total") == 1, "training")
    first.process.terminate()
    assert first.process.wait(120) == 0, first.log.read_text()[-3000:]
    assert client.trials(str(study)) == [], "handed back, not finished"

    second = pods.start("worker", "worker-b")
    _until(lambda: len(client.trials(str(study))) == 1, "the handed-back trial to be stored")
    (trial,) = client.trials(str(study))
    assert (trial.status, trial.score, trial.attempts) == ("done", 0.5, 2)
    assert trial.worker == "worker-b-pod"
    # A preemption, not a redelivery: the broker's delivery count never saw it.
    assert _metric(second.port, "tunefleet_redeliveries_total") == 0
    status = client.status(str(study))
    assert status is not None and (status.preemptions, status.redeliveries) == (1, 0)
