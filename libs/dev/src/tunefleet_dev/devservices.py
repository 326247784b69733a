"""A RabbitMQ and a MongoDB-protocol server for tests, `make demo` and benchmarks.

Resolution order, for each of the two: its URL (`RABBITMQ_URL` / `MONGODB_URL`) when set; else,
where a Docker engine answers, a container (testcontainers) of its image when that image is here
or can be pulled (`RABBITMQ_IMAGE` / `MONGO_IMAGE`, default the official ones); else a local
process on a free port in a temporary directory (Debian's `rabbitmq-server`; `mongod` if on
PATH, else FerretDB built from its Go module), installing what is missing. A daemon that cannot
pull never fails a run: `Services.origin` says what was used and why. Local processes can be
stopped and started again on the same port and data, which is what the fault-injection suite
needs.

`python -m tunefleet_dev.devservices install` installs both ahead of time (CI does).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tunefleet_dev import engine, images
from tunefleet_dev.installs import FERRETDB_VERSION, ToolError, apt_install, ensure_ferretdb

__all__ = [
    "DEFAULT_CONSUMER_TIMEOUT_MS",
    "FERRETDB_VERSION",
    "LocalMongo",
    "LocalRabbitMQ",
    "Pipeline",
    "ServiceUnavailableError",
    "Services",
    "ensure_ferretdb",
    "ensure_rabbitmq",
    "free_port",
    "service_command",
    "start_services",
]

# A trial chunk must be acked within this; see docs/reliability.md.
DEFAULT_CONSUMER_TIMEOUT_MS = 2 * 60 * 60 * 1000
_RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
# The only default credentials in the project: those of the throwaway local services.
_LOCAL_USER = "guest"


class ServiceUnavailableError(ToolError):
    """A service could not be found, installed or started; the text says which and why."""


# Where free ports are looked for: below the kernel's ephemeral range (Linux: 32768-60999),
# from which every outgoing connection takes its source port. A port from that range, free
# when chosen, can be taken by any client's connection while the server that owns it restarts
# (seen: a broker restart that failed with its port in use, under load).
_PORTS_FROM = 20_000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A port free on 127.0.0.1 now, outside the ephemeral range where there is room."""
    low = _ephemeral_low()
    for _ in range(50):
        port = random.randrange(_PORTS_FROM, max(low, _PORTS_FROM + 1))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # a crowded machine: any free port
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceUnavailableError(
                f"process exited with {proc.returncode} before port {port}"
            )
        if _port_open(port):
            return
        time.sleep(0.1)
    raise ServiceUnavailableError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


def _run(
    cmd: list[str],
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    result = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=900
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-2000:]
        raise ServiceUnavailableError(f"{what} failed ({' '.join(cmd)}): {tail}")
    return result.stdout


# --- installation -------------------------------------------------------------------------


def ensure_rabbitmq() -> Path:
    """Debian's rabbitmq-server, installed with apt-get when missing."""
    if (_RABBIT_BIN / "rabbitmq-server").exists():
        return _RABBIT_BIN
    try:
        apt_install("rabbitmq-server", "the message broker of the tests and the demo")
    except ToolError as exc:
        raise ServiceUnavailableError(str(exc)) from exc
    return _RABBIT_BIN


def _ferretdb() -> Path:
    try:
        return ensure_ferretdb()
    except ToolError as exc:
        raise ServiceUnavailableError(str(exc)) from exc


# --- local processes ----------------------------------------------------------------------


@dataclass
class LocalRabbitMQ:
    """One RabbitMQ node of our own: own name, ports, data and Erlang cookie."""

    root: Path
    consumer_timeout_ms: int = DEFAULT_CONSUMER_TIMEOUT_MS
    # How often channels check consumer_timeout (RabbitMQ's default: every 60 s); tests of the
    # timeout itself make it short.
    channel_tick_ms: int | None = None
    port: int = field(default_factory=free_port)
    node: str = field(default_factory=lambda: f"tf{uuid.uuid4().hex[:8]}@localhost")
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://{_LOCAL_USER}:{_LOCAL_USER}@127.0.0.1:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.root),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbitmq.pid"),
        }

    def __post_init__(self) -> None:
        self._dist_port = 0  # chosen at each start: only epmd needs to know it
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"consumer_timeout = {self.consumer_timeout_ms}\n"
            "log.console = false\n"
        )
        (self.root / "enabled_plugins").write_text("[].\n")
        if self.channel_tick_ms is not None:
            (self.root / "advanced.config").write_text(
                f"[{{rabbit, [{{channel_tick_interval, {self.channel_tick_ms}}}]}}].\n"
            )

    def _ctl(self, *args: str) -> str:
        return _run(
            [str(_RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args], "rabbitmqctl", self._env()
        )

    def start(self, timeout: float = 120) -> None:
        bin_dir = ensure_rabbitmq()
        self._dist_port = free_port()
        log = (self.root / "server.log").open("ab")
        self._proc = subprocess.Popen(
            [str(bin_dir / "rabbitmq-server")],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_port(self.port, timeout, self._proc)
        self._ctl("await_startup", "--timeout", str(int(timeout)))

    def stop(self) -> None:
        if self._proc is None:
            return
        # SIGTERM is RabbitMQ's graceful shutdown (since 3.7), as `rabbitmqctl stop` is, minus
        # the seconds the CLI's own Erlang VM takes to start: clients see the broker go at once.
        self._proc.terminate()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class LocalMongo:
    """`mongod` when it is on PATH, else FerretDB on SQLite files; stoppable and restartable."""

    root: Path
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def _command(self) -> list[str]:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        mongod = shutil.which("mongod")
        if mongod:
            return [
                mongod,
                "--bind_ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dbpath",
                str(data),
            ]
        return [
            str(_ferretdb()),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--listen-addr=127.0.0.1:{self.port}",
            f"--state-dir={self.root}",
            "--debug-addr=127.0.0.1:0",
            "--telemetry=disable",
            "--log-level=warn",
        ]

    def start(self, timeout: float = 60) -> None:
        log = (self.root / "server.log").open("ab") if self.root.exists() else None
        if log is None:
            self.root.mkdir(parents=True, exist_ok=True)
            log = (self.root / "server.log").open("ab")
        self._proc = subprocess.Popen(
            self._command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        _wait_port(self.port, timeout, self._proc)

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (the fault-injection suite limits its writes)."""
        return self._proc.pid if self._proc is not None else None

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


class _Stoppable(Protocol):
    def stop(self) -> None: ...


@dataclass
class Services:
    """Where the broker and the store are, and (for local ones) handles to stop and start."""

    rabbitmq_url: str
    mongodb_url: str
    rabbitmq: LocalRabbitMQ | None = None
    mongo: LocalMongo | None = None
    origin: str = "environment"
    containers: list[str] = field(default_factory=list)  # ids of the containers started
    _owned: list[_Stoppable] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {"RABBITMQ_URL": self.rabbitmq_url, "MONGODB_URL": self.mongodb_url}

    def stop(self) -> None:
        for service in reversed(self._owned):
            with contextlib.suppress(Exception):
                service.stop()
        self._owned.clear()


class _Container:
    """One service in a container of its own (testcontainers), removed by `stop`."""

    def __init__(self, image: str, port: int, env: Mapping[str, str]) -> None:
        from testcontainers.core.container import DockerContainer

        container: Any = DockerContainer(image).with_exposed_ports(port)
        for name, value in env.items():
            container = container.with_env(name, value)
        self._container = container.start()
        self.port = port

    @property
    def id(self) -> str:
        return str(self._container.get_wrapped_container().id)

    @property
    def address(self) -> str:
        host = self._container.get_container_host_ip()
        return f"{host}:{self._container.get_exposed_port(self.port)}"

    def stop(self) -> None:
        self._container.stop()


def _wait_ready(what: str, ready: Any, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ready()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                message = f"{what} not ready in {timeout_s:.0f} s: {exc}"
                raise ServiceUnavailableError(message) from exc
            time.sleep(0.5)


def _rabbitmq_container(image: str, consumer_timeout_ms: int) -> tuple[_Container, str]:
    import pika

    env = {
        "RABBITMQ_DEFAULT_USER": _LOCAL_USER,
        "RABBITMQ_DEFAULT_PASS": _LOCAL_USER,
        # As every broker the project starts: the timeout its workers need (docs/reliability.md).
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-rabbit consumer_timeout {consumer_timeout_ms}",
    }
    container = _Container(image, 5672, env)
    url = f"amqp://{_LOCAL_USER}:{_LOCAL_USER}@{container.address}/%2F"
    _wait_ready(image, lambda: pika.BlockingConnection(pika.URLParameters(url)).close())
    return container, url


def _mongo_container(image: str, _: int) -> tuple[_Container, str]:
    from pymongo import MongoClient

    container = _Container(image, 27017, {})
    url = f"mongodb://{container.address}/"

    def ping() -> None:
        client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=1000)
        with client:
            client.admin.command("ping")

    _wait_ready(image, ping)
    return container, url


def _ryuk_or_not(docker: images.Docker) -> str:
    """testcontainers' reaper when its image can be had; else containers are removed by
    `Services.stop` alone (a killed run leaves them: `docker ps` shows them)."""
    from testcontainers.core.config import testcontainers_config

    if testcontainers_config.ryuk_disabled:
        return "without Ryuk"
    ryuk = testcontainers_config.ryuk_image
    if docker.label(ryuk) is None and docker.pull(ryuk) is not None:
        testcontainers_config.ryuk_disabled = True
        return f"without Ryuk ({ryuk} cannot be pulled)"
    return "with Ryuk"


def _container_services(services: Services, notes: list[str], consumer_timeout_ms: int) -> None:
    """Containers for the services that have no URL yet, where their images can be had."""
    docker = images.Docker()
    defaults = images.official_defaults()
    wanted = [
        (name, variable, start)
        for name, variable, start, url in (
            ("rabbitmq", "RABBITMQ_IMAGE", _rabbitmq_container, services.rabbitmq_url),
            ("mongodb", "MONGO_IMAGE", _mongo_container, services.mongodb_url),
        )
        if not url
    ]
    reaper = ""
    for name, variable, start in wanted:
        image = os.environ.get(variable) or defaults[variable]
        if docker.label(image) is None and (why := docker.pull(image)) is not None:
            notes.append(f"{name}: {image} cannot be pulled ({why})")
            continue
        reaper = reaper or _ryuk_or_not(docker)
        container, url = start(image, consumer_timeout_ms)
        services._owned.append(container)
        services.containers.append(container.id)
        if name == "rabbitmq":
            services.rabbitmq_url = url
        else:
            services.mongodb_url = url
        notes.append(f"{name}: container {image} {reaper}")


def start_services(
    root: Path | None = None, *, consumer_timeout_ms: int | None = None, use_docker: bool = True
) -> Services:
    """Find or start a broker and a store; the caller calls `.stop()` (or uses `running`)."""
    services = Services(
        rabbitmq_url=os.environ.get("RABBITMQ_URL", ""),
        mongodb_url=os.environ.get("MONGODB_URL", ""),
    )
    notes = [
        f"{name}: from the environment"
        for name, url in (("rabbitmq", services.rabbitmq_url), ("mongodb", services.mongodb_url))
        if url
    ]
    try:
        if (
            use_docker
            and not (services.rabbitmq_url and services.mongodb_url)
            and (engine.daemon_answers())
        ):
            _container_services(services, notes, consumer_timeout_ms or DEFAULT_CONSUMER_TIMEOUT_MS)
        base = root or Path(tempfile.mkdtemp(prefix="tunefleet-services-"))
        if not services.rabbitmq_url:
            rabbit = LocalRabbitMQ(
                base / "rabbitmq",
                consumer_timeout_ms=consumer_timeout_ms or DEFAULT_CONSUMER_TIMEOUT_MS,
            )
            services._owned.append(rabbit)
            rabbit.start()
            services.rabbitmq, services.rabbitmq_url = rabbit, rabbit.url
            notes.append("rabbitmq: local rabbitmq-server")
        if not services.mongodb_url:
            mongo = LocalMongo(base / "mongo")
            services._owned.append(mongo)
            mongo.start()
            services.mongo, services.mongodb_url = mongo, mongo.url
            notes.append(f"mongodb: local {'mongod' if shutil.which('mongod') else 'FerretDB'}")
    except BaseException:
        services.stop()
        raise
    services.origin = "; ".join(notes)
    return services


@contextlib.contextmanager
def running(root: Path | None = None, **kwargs: object) -> Iterator[Services]:
    services = start_services(root, **kwargs)  # type: ignore[arg-type]
    try:
        yield services
    finally:
        services.stop()


def service_command(service: str) -> list[str]:
    """How to start one of the three services with this interpreter (as the images do)."""
    if service not in {"publisher", "worker", "collector"}:
        raise ValueError(f"unknown service {service!r}")
    return [sys.executable, "-m", f"tunefleet_{service}"]


@dataclass
class Pipeline:
    """The three services as separate processes against `services`, as in production."""

    services: Services
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, service: str, name: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        name = name or service
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        full_env = {**os.environ, **self.services.env(), **self.env, **env}
        if service == "worker":
            full_env.setdefault("TUNEFLEET_WORKER_NAME", name)
        proc = subprocess.Popen(
            service_command(service), env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes[name] = proc
        return proc

    def start_all(self, workers: int = 2, **env: str) -> None:
        self.start("collector", **env)
        self.start("publisher", **env)
        for i in range(workers):
            self.start("worker", f"worker-{i + 1}", **env)

    def stop(self, name: str, timeout: float = 30) -> int | None:
        proc = self.processes.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["install"]:
        print("usage: python -m tunefleet_dev.devservices install", file=sys.stderr)
        return 2
    print(f"rabbitmq: {ensure_rabbitmq()}")
    if shutil.which("mongod"):
        print(f"mongod: {shutil.which('mongod')}")
    else:
        print(f"ferretdb: {ensure_ferretdb()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
