"""`make dev` for real: Tilt on a kind cluster, then the GKE overlay on the same cluster's nodes.

One kind cluster for the package, made as `make dev` makes it (tunefleet_dev.kind: the node
image built here where kindest/node cannot be pulled, the stand-ins chosen by the generated
configuration), with two nodes: the control plane, labelled as GKE's default pool and open to
pods, and one worker labelled and tainted as GKE's spot pool. The dev drills run first, on the
control plane (k8s/dev tolerates no spot taint); test_gke.py then replaces k8s/dev with k8s/gke,
whose images are the ones Tilt built and loaded. Tilt and the edits of the live-update drill
work in a copy of this checkout, never in it.

A Docker daemon is needed (`make test` starts one); in CI its absence fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pymongo import MongoClient
from pymongo.database import Database
from tunefleet_dev import engine, kind
from tunefleet_dev.devservices import free_port
from tunefleet_runtime.settings import ClientSettings

from tests.conftest import IN_CI
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "tunefleet"
SPOT = {"cloud.google.com/gke-spot": "true", "cloud.google.com/gke-nodepool": "spot"}
DEFAULT_POOL = {"cloud.google.com/gke-nodepool": "default-pool"}
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], timeout_s: float = 300) -> T:
    """tests.support.waiting's wait, at the pace of a cluster (once a second)."""
    return wait_until(check, what=what, timeout=timeout_s, interval=1.0)


@dataclass
class Lab:
    """The cluster, the checkout copy Tilt runs in, and how to reach what runs there."""

    cluster: kind.Cluster
    repo: Path
    config: Path
    env: dict[str, str]  # the copy's .env
    timings: dict[str, float] = field(default_factory=dict)

    def kubectl(self, *args: str, check: bool = True, timeout: float = 180) -> str:
        result = self.cluster.kubectl(*args, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def pods(self, app: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.json(
            "-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/name={app}"
        )["items"]
        return [p for p in found if not p["metadata"].get("deletionTimestamp")]

    def ready(self, app: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.pods(app)
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ]

    def tilt(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        _, argv = kind.tilt_command(args)
        return subprocess.run(
            argv,
            cwd=self.repo,
            env=kind.tilt_env(self.cluster, self.config),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @contextmanager
    def port_forward(self, service: str, remote: int) -> Iterator[int]:
        """`kubectl port-forward svc/<service>` to a free local port, for as long as it is used."""
        local = free_port()
        command = [shutil.which("kubectl") or "kubectl", "--context", self.cluster.context]
        command += ["--kubeconfig", str(self.cluster.kubeconfig), "-n", NAMESPACE]
        forward = subprocess.Popen(
            [*command, "port-forward", f"svc/{service}", f"{local}:{remote}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"port-forward on {local}", lambda: _answers(local), 60)
            yield local
        finally:
            forward.terminate()
            forward.wait(10)

    @contextmanager
    def forwarded(self) -> Iterator[ClientSettings]:
        """The broker and the database on local ports (kubectl port-forward), as the client's
        settings with .env's administrators (what `make cluster-demo` does)."""
        ports = {"rabbitmq": (free_port(), 5672), "mongodb": (free_port(), 27017)}
        command = [shutil.which("kubectl") or "kubectl", "--context", self.cluster.context]
        command += ["--kubeconfig", str(self.cluster.kubeconfig), "-n", NAMESPACE]
        forwards = [
            subprocess.Popen(
                [*command, "port-forward", f"svc/{service}", f"{local}:{remote}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for service, (local, remote) in ports.items()
        ]
        try:
            for local, _ in ports.values():
                wait_for(f"port-forward on {local}", lambda p=local: _answers(p), 60)
            e = self.env
            yield ClientSettings(
                rabbitmq_url=f"amqp://{e['RABBITMQ_USER']}:{e['RABBITMQ_PASSWORD']}"
                f"@127.0.0.1:{ports['rabbitmq'][0]}/%2F",
                mongodb_url=f"mongodb://{e['MONGO_USER']}:{e['MONGO_PASSWORD']}"
                f"@127.0.0.1:{ports['mongodb'][0]}/?authSource=admin",
            )
        finally:
            for forward in forwards:
                forward.terminate()
                forward.wait(10)


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def db(settings: ClientSettings) -> Database[dict[str, Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(
        str(settings.mongodb_url), serverSelectionTimeoutMS=20000
    )
    return client[settings.mongodb_database]


def _copy_checkout(target: Path) -> None:
    """Tracked files and new ones not ignored, as they are now (edits included)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.fixture(scope="package")
def lab() -> Iterator[Lab]:
    if not engine.daemon_answers():
        message = "no Docker daemon answers (`make test` starts one: tunefleet_dev.engine)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    # Not under pytest's basetemp: another pytest run on the machine may remove that while
    # Tilt still works in it (pytest keeps the three newest), so a folder of its own.
    work = Path(tempfile.mkdtemp(prefix="tunefleet-kind-"))
    repo = work / "repo"
    _copy_checkout(repo)
    shutil.copy(repo / ".env.example", repo / ".env")
    subprocess.run(
        [sys.executable, "deploy/credentials.py", "--local", ".env", "k8s"],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    env = dict(
        line.split("=", 1)
        for line in (repo / ".env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    cluster = kind.Cluster(
        # TUNEFLEET_KIND_CLUSTER: a cluster kept from an earlier run (TUNEFLEET_KEEP_KIND=1),
        # to work on the suite without making one each time.
        os.environ.get("TUNEFLEET_KIND_CLUSTER") or f"tfkind-{uuid.uuid4().hex[:6]}",
        (
            # No taint: the control plane is GKE's default pool here, open to pods.
            kind.Node(labels=DEFAULT_POOL, taints=()),
            kind.Node("worker", SPOT, ("cloud.google.com/gke-spot=true:NoSchedule",)),
        ),
        kubeconfig=Path(os.environ.get("TUNEFLEET_KIND_KUBECONFIG") or work / "kubeconfig"),
    )
    config = work / "tilt.json"
    lab = Lab(cluster, repo, config, env)
    try:
        started = time.monotonic()
        # Other ports than a `make dev` of this machine's, for Tilt's port-forwards.
        ports = {remote: free_port() for remote in (5672, 15672, 27017, 8765)}
        kind.up(cluster, config, ports)
        lab.timings["cluster up"] = time.monotonic() - started
        yield lab
    finally:
        if os.environ.get("TUNEFLEET_KEEP_KIND") != "1":
            kind.delete(cluster)
            shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="package")
def tilt_ci(lab: Lab) -> Lab:
    """`tilt ci` in the copy: builds, loads into kind, deploys k8s/dev, waits for every
    resource; exits 0 only when all are ready."""
    started = time.monotonic()
    result = lab.tilt("ci", "--context", lab.cluster.context, "--port", "0", "--timeout", "15m")
    lab.timings["tilt ci"] = time.monotonic() - started
    (lab.repo.parent / "tilt-ci.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "SUCCESS. All workloads are healthy." in result.stdout + result.stderr
    return lab
