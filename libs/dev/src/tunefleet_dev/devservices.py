"""A RabbitMQ and a MongoDB-protocol server for tests, `make demo` and benchmarks.

Resolution order: `RABBITMQ_URL` / `MONGODB_URL` when set; else a Docker engine through
testcontainers when one answers; else local processes on free ports in a temporary directory
(Debian's `rabbitmq-server`; `mongod` if on PATH, else FerretDB built from its Go module),
installing what is missing. Local processes can be stopped and started again on the same port
and data, which is what the fault-injection suite needs.

`python -m tunefleet_dev.devservices install` installs both ahead of time (CI does).
"""

from __future__ import annotations

import contextlib
import json
import os
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
from typing import Protocol

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

FERRETDB_VERSION = "v1.24.2"
# A trial chunk must be acked within this; see docs/reliability.md.
DEFAULT_CONSUMER_TIMEOUT_MS = 2 * 60 * 60 * 1000
_RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
_CACHE = Path(os.environ.get("TUNEFLEET_CACHE", str(Path.home() / ".cache" / "tunefleet")))
# The only default credentials in the project: those of the throwaway local services.
_LOCAL_USER = "guest"


class ServiceUnavailableError(RuntimeError):
    """A service could not be found, installed or started; the text says which and why."""


def free_port() -> int:
    with socket.socket() as sock:
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
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise ServiceUnavailableError(
            "rabbitmq-server is not installed; run `apt-get install -y rabbitmq-server` as root"
        )
    print(
        "installing rabbitmq-server (Debian package): the message broker of the tests and the demo",
        file=sys.stderr,
    )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], "apt-get update", env)
    _run(["apt-get", "install", "-y", "-qq", "rabbitmq-server"], "installing rabbitmq-server", env)
    return _RABBIT_BIN


def _go() -> str:
    found = shutil.which("go")
    if found:
        return found
    if Path("/usr/local/go/bin/go").exists():
        return "/usr/local/go/bin/go"
    raise ServiceUnavailableError("FerretDB must be built, and no Go toolchain is on PATH")


def ensure_ferretdb() -> Path:
    """FerretDB built from its Go module, cached under ~/.cache/tunefleet/bin."""
    binary = _CACHE / "bin" / f"ferretdb-{FERRETDB_VERSION}"
    if binary.exists():
        return binary
    go = _go()
    print(
        f"building FerretDB {FERRETDB_VERSION} from its Go module into {binary.parent} "
        "(a few minutes, once): the MongoDB-protocol server of the tests and the demo",
        file=sys.stderr,
    )
    module = f"github.com/FerretDB/FerretDB@{FERRETDB_VERSION}"
    source = Path(json.loads(_run([go, "mod", "download", "-json", module], module))["Dir"])
    with tempfile.TemporaryDirectory(prefix="ferretdb-src-") as tmp:
        work = Path(tmp) / "src"
        shutil.copytree(source, work)
        for path in [work, *work.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        # A plain `go install` of this module panics at start-up: its version file comes from
        # the project's release tooling and is not in the module. Supply it, then build.
        (work / "build" / "version" / "version.txt").write_text(f"{FERRETDB_VERSION}\n")
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        _run(
            [go, "build", "-buildvcs=false", "-o", str(partial), "./cmd/ferretdb"],
            "building FerretDB",
            {**os.environ, "CGO_ENABLED": "0"},
            cwd=work,
        )
        partial.rename(binary)
    return binary


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
        self._dist_port = free_port()
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
            str(ensure_ferretdb()),
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
    _owned: list[_Stoppable] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {"RABBITMQ_URL": self.rabbitmq_url, "MONGODB_URL": self.mongodb_url}

    def stop(self) -> None:
        for service in reversed(self._owned):
            with contextlib.suppress(Exception):
                service.stop()
        self._owned.clear()


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _docker_services(services: Services) -> None:
    from testcontainers.mongodb import MongoDbContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    if not services.rabbitmq_url:
        rabbit = RabbitMqContainer("rabbitmq:3.13.7-management").start()
        services._owned.append(rabbit)
        host, port = rabbit.get_container_host_ip(), rabbit.get_exposed_port(5672)
        services.rabbitmq_url = f"amqp://guest:guest@{host}:{port}/%2F"
    if not services.mongodb_url:
        mongo = MongoDbContainer("mongo:7.0.14").start()
        services._owned.append(mongo)
        services.mongodb_url = mongo.get_connection_url()


def start_services(
    root: Path | None = None, *, consumer_timeout_ms: int | None = None, use_docker: bool = True
) -> Services:
    """Find or start a broker and a store; the caller calls `.stop()` (or uses `running`)."""
    services = Services(
        rabbitmq_url=os.environ.get("RABBITMQ_URL", ""),
        mongodb_url=os.environ.get("MONGODB_URL", ""),
    )
    if services.rabbitmq_url and services.mongodb_url:
        return services
    try:
        if use_docker and _docker_answers():
            services.origin = "docker"
            _docker_services(services)
            return services
        services.origin = "local"
        base = root or Path(tempfile.mkdtemp(prefix="tunefleet-services-"))
        if not services.rabbitmq_url:
            rabbit = LocalRabbitMQ(
                base / "rabbitmq",
                consumer_timeout_ms=consumer_timeout_ms or DEFAULT_CONSUMER_TIMEOUT_MS,
            )
            services._owned.append(rabbit)
            rabbit.start()
            services.rabbitmq, services.rabbitmq_url = rabbit, rabbit.url
        if not services.mongodb_url:
            mongo = LocalMongo(base / "mongo")
            services._owned.append(mongo)
            mongo.start()
            services.mongo, services.mongodb_url = mongo, mongo.url
    except BaseException:
        services.stop()
        raise
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
