"""The whole system as containers: docker-compose.yml brought up once for this package.

The stack is a compose project of its own (its own name, volumes, `.env` with fresh passwords,
free published ports), built from the images `make test` builds first (tunefleet_dev.stack),
with the stand-in bases where the official ones cannot be pulled. It needs a Docker daemon:
`make test` starts one where none answers (tunefleet_dev.engine); in CI its absence fails.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database
from tunefleet_dev import engine
from tunefleet_dev.devservices import free_port
from tunefleet_dev.stack import PORTS, Stack
from tunefleet_runtime.settings import ClientSettings

from tests.conftest import IN_CI

WORKERS = 3
SERVICES = ("collector", "publisher", "worker")
# Up with them, from the client's image (tests/containers/test_dashboard.py).
DASHBOARD = "dashboard"


@dataclass
class ComposeStack:
    """A running compose project and how to reach it from this machine."""

    stack: Stack
    env: dict[str, str]

    @property
    def rabbitmq_url(self) -> str:
        e = self.env
        return f"amqp://{e['RABBITMQ_USER']}:{e['RABBITMQ_PASSWORD']}@127.0.0.1:{e['RABBITMQ_PORT']}/%2F"

    @property
    def mongodb_url(self) -> str:
        e = self.env
        return (
            f"mongodb://{e['MONGO_USER']}:{e['MONGO_PASSWORD']}@127.0.0.1:{e['MONGO_PORT']}/"
            "?authSource=admin"
        )

    def settings(self) -> ClientSettings:
        """The client's settings: the stack's broker and store, its namespace and database."""
        return ClientSettings(rabbitmq_url=self.rabbitmq_url, mongodb_url=self.mongodb_url)

    def shell_env(self) -> dict[str, str]:
        return {"RABBITMQ_URL": self.rabbitmq_url, "MONGODB_URL": self.mongodb_url}

    def db(self) -> Database[dict[str, Any]]:
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.mongodb_url, serverSelectionTimeoutMS=5000
        )
        return client[self.settings().mongodb_database]

    def compose(self, *args: str) -> str:
        return self.stack.compose(*args, capture=True).stdout

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).split()

    def inspect(self, container: str) -> dict[str, Any]:
        return json.loads(docker("inspect", container))[0]  # type: ignore[no-any-return]

    def healthy(self) -> dict[str, list[str]]:
        """Each service's containers' health (or state, where there is no healthcheck)."""
        found: dict[str, list[str]] = {}
        for service in ("rabbitmq", "mongodb", *SERVICES, DASHBOARD):
            for container in self.containers(service):
                state = self.inspect(container)["State"]
                found.setdefault(service, []).append(
                    state.get("Health", {}).get("Status", state["Status"])
                )
        return found

    def diagnosis(self) -> str:
        """What a failed test leaves to read: every container's state and its last lines."""
        parts = []
        for args in (("ps", "-a"), ("logs", "--no-color", "--timestamps", "--tail", "40")):
            result = self.stack.invoke(*args, capture=True)
            parts.append(f"$ docker compose {' '.join(args)}\n{result.stdout}{result.stderr}")
        return "\n".join(parts)

    def wait_healthy(self, timeout_s: float = 300) -> dict[str, list[str]]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.healthy()
            if found and all(s == "healthy" for states in found.values() for s in states):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"not healthy within {timeout_s:.0f} s: {found}")
            time.sleep(1)


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(
        [engine.docker(), *args], capture_output=True, text=True, check=False, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test on the stack reports the containers' states and logs with its failure:
    in CI they are all there is to read."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    stack = getattr(item, "funcargs", {}).get("compose_stack")
    if report.failed and isinstance(stack, ComposeStack):
        report.sections.append(("compose stack", stack.diagnosis()))


@pytest.fixture(scope="package")
def docker_daemon() -> None:
    """A Docker daemon answers; in CI its absence fails (`make test` starts one)."""
    if not engine.daemon_answers():
        message = "no Docker daemon answers (`make test` starts one: tunefleet_dev.engine)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="package")
def compose_stack(
    docker_daemon: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeStack]:
    env = {
        "RABBITMQ_USER": "tunefleet",
        "RABBITMQ_PASSWORD": secrets.token_hex(12),
        "MONGO_USER": "tunefleet",
        "MONGO_PASSWORD": secrets.token_hex(12),
        # Cancel and resume from the dashboard (unset: read-only).
        "TUNEFLEET_DASHBOARD_TOKEN": secrets.token_hex(16),
        **{name: str(free_port()) for name in PORTS},
    }
    env_file: Path = tmp_path_factory.mktemp("stack") / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    stack = Stack(project=f"tftest{uuid.uuid4().hex[:8]}", env_file=env_file)
    stack.up(workers=WORKERS)
    try:
        yield ComposeStack(stack, env)
    finally:
        stack.down(volumes=True)
