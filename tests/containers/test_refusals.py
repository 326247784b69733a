"""Bad configuration is refused in one line that says what to do, before anything starts:
a port in use, an engine that does not answer, an image that can be neither pulled nor built."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tunefleet_dev.devservices import free_port
from tunefleet_dev.stack import PORTS, Stack

pytestmark = pytest.mark.usefixtures("docker_daemon")

GOOD = (
    "RABBITMQ_USER=tunefleet\nRABBITMQ_PASSWORD=abc1\nMONGO_USER=tunefleet\nMONGO_PASSWORD=abc2\n"
)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A project name of its own and a `.env` with free ports; nothing of it may start."""
    name = f"tfrefuse{uuid.uuid4().hex[:8]}"
    env_file = tmp_path / "stack.env"
    env_file.write_text(GOOD + "".join(f"{p}={free_port()}\n" for p in PORTS))
    yield name, env_file
    containers = Stack(project=name, env_file=env_file).invoke("ps", "-aq", capture=True)
    assert containers.stdout.strip() == "", "a refused `up` started containers"


def _up(project: tuple[str, Path], **env: str) -> subprocess.CompletedProcess[str]:
    name, env_file = project
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tunefleet_dev.stack",
            "--project",
            name,
            "--env-file",
            str(env_file),
            "up",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, **env},
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_port_in_use_is_named_with_what_to_do(project: tuple[str, Path]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        line = _one_line(_up(project, MONGO_PORT=str(port)))
    assert f"127.0.0.1:{port} (MONGO_PORT) is in use by another program" in line
    assert "set MONGO_PORT=<a free port>" in line


def test_an_engine_that_does_not_answer_is_named(project: tuple[str, Path], tmp_path: Path) -> None:
    line = _one_line(_up(project, DOCKER_HOST=f"unix://{tmp_path}/none.sock"))
    assert f"DOCKER_HOST=unix://{tmp_path}/none.sock does not answer" in line


def test_an_image_that_can_be_neither_pulled_nor_built_is_named(project: tuple[str, Path]) -> None:
    line = _one_line(_up(project, RABBITMQ_IMAGE="tunefleet-local/never-built:0"))
    assert (
        "RABBITMQ_IMAGE=tunefleet-local/never-built:0 is neither here nor can it be pulled" in line
    )
    assert "unset RABBITMQ_IMAGE to use the default" in line
