"""The compose stack (docker-compose.yml) as `make up`, `make compose-demo`, `make down` run it.

Before anything starts, what would only fail half-way is refused in one line that says what
to do: a missing or incomplete `.env`, a password compose cannot put into a URL, a published
port another program holds, no Docker daemon (one is started where this machine can), an image
that can neither be pulled nor built here. Then compose runs with the images resolved by
`tunefleet_dev.images` and the build CA, if any; an `up` that fails is taken down again
(volumes kept), never left half-started.

    python -m tunefleet_dev.stack [--project NAME] [--env-file PATH] \
        up | down | demo | test | build | compose ARGS...
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunefleet_dev import engine, images
from tunefleet_dev.installs import ToolError, cli

__all__ = ["CREDENTIALS", "PORTS", "Stack", "StackError", "read_env_file"]

CREDENTIALS = ("RABBITMQ_USER", "RABBITMQ_PASSWORD", "MONGO_USER", "MONGO_PASSWORD")
# The ports compose publishes on 127.0.0.1, each a variable with the default compose gives it.
PORTS = {
    "RABBITMQ_PORT": 5672,
    "RABBITMQ_UI_PORT": 15672,
    "MONGO_PORT": 27017,
    "DASHBOARD_PORT": 8765,
}
# What the compose `demo` service submits (its command names it under /examples).
DEMO_SPEC = Path("examples") / "demo.yaml"
# Every profile, so that `build` and `down` reach the demo and tests services too.
PROFILES = ("--profile", "demo", "--profile", "test")


class StackError(ToolError):
    """The stack cannot start as configured; the text says what to do."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as compose reads them (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the server that will listen there does (docker-proxy): connections of a stack
        # that just stopped, still in TIME_WAIT, do not hold the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Stack:
    """One compose project: its name, its `.env`, the ports and images it runs with."""

    root: Path = images.ROOT
    project: str = "tunefleet"
    env_file: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    resolution: images.Resolution | None = None

    # Building needs no credentials, but compose interpolates the whole file first: without a
    # `.env`, a build reads the example's placeholders (nothing of them enters an image).
    for_build: bool = False

    @property
    def dotenv(self) -> Path:
        if self.env_file is not None:
            return self.env_file
        dotenv = self.root / ".env"
        return dotenv if dotenv.exists() or not self.for_build else self.root / ".env.example"

    def check_env_file(self) -> dict[str, str]:
        if not self.dotenv.exists():
            raise StackError(
                f"no {self.dotenv.name}: `cp .env.example .env` and set the two passwords "
                "(openssl rand -hex 24)"
            )
        values = read_env_file(self.dotenv)
        missing = [name for name in CREDENTIALS if not values.get(name)]
        if missing:
            raise StackError(f"{self.dotenv} does not set {', '.join(missing)}: set them there")
        for name in CREDENTIALS:
            if not re.fullmatch(r"[A-Za-z0-9_-]+", values[name]):
                raise StackError(
                    f"{name} in {self.dotenv} has characters compose cannot put into a URL: "
                    "use letters and digits (openssl rand -hex 24)"
                )
        return values

    def port_values(self) -> dict[str, int]:
        values = read_env_file(self.dotenv) if self.dotenv.exists() else {}
        chosen = {}
        for name, default in PORTS.items():
            raw = self.ports.get(name) or os.environ.get(name) or values.get(name) or default
            try:
                chosen[name] = int(raw)
            except ValueError:
                raise StackError(f"{name}={raw!r} is not a port number") from None
        return chosen

    def running_services(self) -> list[str]:
        result = self.invoke("ps", "--format", "json", capture=True)
        if result.returncode != 0 or not result.stdout.strip():
            return []
        text = result.stdout.strip()
        # One JSON array, or one object a line (compose has printed both, by version).
        lines = [text] if text.startswith("[") else text.split("\n")
        rows = [row for line in lines for row in _as_list(json.loads(line))]
        return [row["Service"] for row in rows if row.get("State") == "running"]

    def check_ports(self) -> None:
        if self.running_services():
            return  # this project holds them: `up` again updates it in place
        for name, port in self.port_values().items():
            if not _port_free(port):
                raise StackError(
                    f"127.0.0.1:{port} ({name}) is in use by another program: stop it, or set "
                    f"{name}=<a free port> in {self.dotenv.name} or the environment"
                )

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **self.extra_env, "COMPOSE_PROJECT_NAME": self.project}
        env.update({name: str(port) for name, port in self.port_values().items()})
        if self.resolution is not None:
            env.update(self.resolution.images)
        ca = images.build_ca()
        if ca is not None:
            # Inside the project: buildx refuses a secret file elsewhere without an entitlement.
            copy = self.root / ".tunefleet" / "build-ca.pem"
            copy.parent.mkdir(exist_ok=True)
            shutil.copyfile(ca, copy)
            env["TUNEFLEET_BUILD_CA"] = str(copy)
        return env

    def invoke(self, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
        """`docker compose ARGS` for this project, whatever its exit status."""
        command = [engine.docker(), "compose", "--project-directory", str(self.root)]
        command += ["--env-file", str(self.dotenv)] if self.dotenv.exists() else []
        result = subprocess.run(
            [*command, *args],
            cwd=self.root,
            env=self.environment(),
            capture_output=capture,
            text=True,
            check=False,
        )
        if "build" in args or "--build" in args:
            images.Docker(engine.docker()).prune_dangling()
        return result

    def compose(self, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
        """`docker compose ARGS` for this project; raises with compose's words if it fails."""
        result = self.invoke(*args, capture=capture)
        if result.returncode != 0:
            detail = (result.stderr or "").strip().splitlines()[-5:] if capture else []
            raise StackError(
                f"`docker compose {' '.join(args)}` failed (exit status {result.returncode})"
                + (": " + " / ".join(detail) if detail else "")
            )
        return result

    def prepare(self, *, check_ports: bool = True) -> None:
        """Everything `up` needs, checked or made, before a container starts."""
        if not self.for_build:
            self.check_env_file()
        engine.ensure_installed()
        engine.start_daemon()
        if check_ports:
            self.check_ports()
        if self.resolution is None:
            self.resolution = images.resolve()
            print(f"images: {self.resolution.summary()}", file=sys.stderr, flush=True)

    def up(self, *services: str, workers: int | None = None, timeout_s: int = 600) -> None:
        self.prepare()
        args = ["up", "-d", "--build", "--wait", "--wait-timeout", str(timeout_s)]
        if workers is not None:
            args += ["--scale", f"worker={workers}"]
        result = self.invoke(*args, *services)
        if result.returncode != 0:
            # Never leave a half-started stack: take down what this call started, data kept.
            with contextlib.suppress(StackError):
                self.compose("logs", "--tail", "20")
            self.invoke("down")
            raise StackError(
                f"`docker compose up` failed (exit status {result.returncode}); what started "
                "was taken down again, volumes kept: see the logs above"
            )

    def build(self) -> None:
        """Every image the stack runs (the demo's and the tests' too), without starting any."""
        self.for_build = True
        self.prepare(check_ports=False)
        self.compose(*PROFILES, "build")

    def demo(self) -> None:
        """The demo study, submitted and followed from the client container, then its
        leaderboard (the best trials of each library)."""
        from tunefleet_runtime.validation import load_spec

        study = load_spec(self.root / DEMO_SPEC).study_id()
        self.prepare(check_ports=False)
        self.compose("run", "--build", "--rm", "demo")
        # As wide as this terminal: in a container without one, the table would take 80 columns.
        width = str(shutil.get_terminal_size((120, 40)).columns)
        self.compose(
            "run",
            "--rm",
            "-e",
            f"COLUMNS={width}",
            "demo",
            "tunefleet",
            "top",
            study,
            "--by-library",
            "-n",
            "3",
        )

    def run_tests(self, *, capture: bool = False) -> subprocess.CompletedProcess[str]:
        """The `tests` container (the e2e suite against these services), built first if stale."""
        self.prepare(check_ports=False)
        return self.invoke("--profile", "test", "run", "--build", "--rm", "tests", capture=capture)

    def down(self, *, volumes: bool = False) -> None:
        self.compose(*PROFILES, "down", *(["-v"] if volumes else []))


def _dispatch(args: list[str]) -> int | None:
    stack = Stack()
    while args[:1] in (["--project"], ["--env-file"]) and len(args) > 1:
        option, value, args = args[0], args[1], args[2:]
        if option == "--project":
            stack.project = value
        else:
            stack.env_file = Path(value)
    if args == ["up"]:
        workers = os.environ.get("WORKERS")
        stack.up(workers=int(workers) if workers else None)
        ports = stack.port_values()
        print(
            f"up: RabbitMQ amqp://127.0.0.1:{ports['RABBITMQ_PORT']} (UI "
            f"http://127.0.0.1:{ports['RABBITMQ_UI_PORT']}), MongoDB "
            f"mongodb://127.0.0.1:{ports['MONGO_PORT']}, the dashboard "
            f"http://127.0.0.1:{ports['DASHBOARD_PORT']}/; `make compose-demo` runs a study"
        )
    elif args == ["down"]:
        if engine.daemon_answers():
            stack.down()
        engine.stop_daemon()
    elif args == ["demo"]:
        stack.demo()
    elif args == ["test"]:
        return stack.run_tests().returncode
    elif args == ["build"]:
        stack.build()
    elif args[:1] == ["compose"]:
        stack.prepare(check_ports=False)
        return stack.invoke(*args[1:]).returncode
    else:
        return None
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli(_dispatch, __doc__ or "", argv)


if __name__ == "__main__":
    raise SystemExit(main())
