"""The Docker engine behind `make images`, `make up` and tests/containers.

Installed like every other tool the targets need, when missing and saying what and why once:
Debian's `docker.io` (dockerd, containerd, runc and a CLI), and the CLI plugins Compose v2 and
Buildx built from their Go modules (Compose needs Buildx to build with BuildKit). A daemon that
does not answer is started, and only a daemon this module started is stopped again.

    python -m tunefleet_dev.engine install      docker.io and the two plugins
    python -m tunefleet_dev.engine start        start dockerd unless one answers (it stays up)
    python -m tunefleet_dev.engine stop         stop the dockerd `start` started, if any
    python -m tunefleet_dev.engine run -- CMD   CMD with a daemon; stops it after if it started it
    python -m tunefleet_dev.engine privileged   let privileged containers start on this host

Privileged containers (kind's nodes) ask for every capability. Where this host's capability
bounding set lacks one (a VM without CAP_SYS_RESOURCE), runc refuses them all; there the
daemon's default runtime becomes tunefleet_dev.runc_hostcaps, which drops from a container's
request only what the host cannot grant. A running daemon takes it with a SIGHUP (its
containers keep running); a daemon started here reads it at start. Elsewhere nothing changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tunefleet_dev import runc_hostcaps
from tunefleet_dev.installs import CACHE, GoTool, ToolError, apt_install, cli

__all__ = [
    "BUILDX",
    "COMPOSE",
    "EngineError",
    "daemon_answers",
    "docker",
    "ensure_installed",
    "ensure_privileged_containers",
    "running_daemon",
    "start_daemon",
    "stop_daemon",
]

COMPOSE = GoTool(
    name="docker-compose",
    module="github.com/docker/compose/v5",
    version="v5.6.0",
    package="github.com/docker/compose/v5/cmd",
    why="the Compose v2 CLI plugin (`docker compose`) of make up and tests/containers",
    version_variable="github.com/docker/compose/v5/internal.Version",
)
BUILDX = GoTool(
    name="docker-buildx",
    module="github.com/docker/buildx",
    version="v0.38.2",
    package="github.com/docker/buildx/cmd/buildx",
    why="the Buildx CLI plugin, with which docker and compose build images with BuildKit",
    version_variable="github.com/docker/buildx/version.Version",
)
_PIDFILE = CACHE / "dockerd.pid"
_LOG = CACHE / "dockerd.log"
DAEMON_JSON = Path("/etc/docker/daemon.json")
HOSTCAPS_RUNTIME = "tunefleet-runc"
# Outside the cache and the checkout: dockerd runs every new container through it.
HOSTCAPS_PATH = Path("/usr/local/lib/tunefleet/runc-hostcaps")


class EngineError(ToolError):
    """No usable Docker engine; the text says what to do."""


def docker() -> str:
    found = shutil.which("docker")
    if found is None:
        raise EngineError("no docker CLI: run `make docker-install` (or install Docker)")
    return found


def _quiet(*args: str, timeout: float = 20) -> bool:
    try:
        result = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def daemon_answers() -> bool:
    return shutil.which("docker") is not None and _quiet("docker", "info", timeout=15)


def _plugins_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG", str(Path.home() / ".docker"))) / "cli-plugins"


def _ensure_plugin(tool: GoTool, subcommand: str) -> None:
    if _quiet("docker", subcommand, "version"):
        return
    binary = tool.ensure()
    link = _plugins_dir() / tool.name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(binary)
    if not _quiet("docker", subcommand, "version"):
        raise EngineError(f"`docker {subcommand} version` fails with {link} -> {binary}")


def ensure_installed() -> None:
    """docker.io when dockerd or the CLI is missing, then the Compose and Buildx plugins."""
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        apt_install("docker.io", "the container engine of make up, make images, tests/containers")
    _ensure_plugin(BUILDX, "buildx")
    _ensure_plugin(COMPOSE, "compose")


def absent_capabilities() -> frozenset[str]:
    """The capabilities this host's bounding set lacks (none on an ordinary machine)."""
    status = Path("/proc/self/status").read_text()
    return runc_hostcaps.missing(runc_hostcaps.bounding_set(status))


def hostcaps_script() -> str:
    """runc_hostcaps as the executable dockerd runs: the system's python3, isolated mode."""
    python = shutil.which("python3", path="/usr/bin:/bin:/usr/local/bin") or "/usr/bin/python3"
    return f"#!{python} -I\n" + Path(runc_hostcaps.__file__).read_text()


def daemon_config(current: dict[str, object]) -> dict[str, object]:
    """daemon.json with the wrapper registered as the default runtime, the rest kept."""
    runtimes = current.get("runtimes")
    merged = dict(runtimes) if isinstance(runtimes, dict) else {}
    merged[HOSTCAPS_RUNTIME] = {"path": str(HOSTCAPS_PATH)}
    return {**current, "runtimes": merged, "default-runtime": HOSTCAPS_RUNTIME}


def _default_runtime() -> str:
    result = subprocess.run(
        ["docker", "info", "--format", "{{.DefaultRuntime}}"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return result.stdout.strip()


def ensure_privileged_containers(reload_timeout_s: float = 30) -> bool:
    """Where the bounding set is incomplete, make the wrapper dockerd's default runtime (and
    reload a running daemon); True if that was needed. Nothing happens elsewhere."""
    absent = absent_capabilities()
    if not absent:
        return False
    script = hostcaps_script()
    current: dict[str, object] = {}
    if DAEMON_JSON.exists():
        current = json.loads(DAEMON_JSON.read_text() or "{}")
    wanted = daemon_config(current)
    up_to_date = (
        HOSTCAPS_PATH.exists() and HOSTCAPS_PATH.read_text() == script and current == wanted
    )
    if up_to_date and (not daemon_answers() or _default_runtime() == HOSTCAPS_RUNTIME):
        return True
    if os.geteuid() != 0:
        raise EngineError(
            f"this host lacks {', '.join(sorted(absent))}, so privileged containers (kind's "
            f"nodes) need the runtime wrapper in {HOSTCAPS_PATH}, which needs root: rerun as root"
        )
    print(
        f"this host's capability bounding set lacks {', '.join(sorted(absent))}: registering "
        f"{HOSTCAPS_PATH} as dockerd's default runtime, so that privileged containers (kind's "
        "nodes) ask only for what the host has",
        file=sys.stderr,
        flush=True,
    )
    HOSTCAPS_PATH.parent.mkdir(parents=True, exist_ok=True)
    partial = HOSTCAPS_PATH.with_name(HOSTCAPS_PATH.name + ".partial")
    partial.write_text(script)
    partial.chmod(0o755)
    partial.replace(HOSTCAPS_PATH)
    DAEMON_JSON.parent.mkdir(parents=True, exist_ok=True)
    staged = DAEMON_JSON.with_name("daemon.json.partial")
    staged.write_text(json.dumps(wanted, indent=2) + "\n")
    staged.replace(DAEMON_JSON)
    pidfile = Path("/var/run/docker.pid")
    if daemon_answers() and pidfile.exists():
        os.kill(int(pidfile.read_text().strip()), signal.SIGHUP)
        deadline = time.monotonic() + reload_timeout_s
        while _default_runtime() != HOSTCAPS_RUNTIME:
            if time.monotonic() > deadline:
                raise EngineError(
                    f"dockerd did not take {DAEMON_JSON}'s default-runtime on SIGHUP: restart "
                    "it (systemctl restart docker) and rerun"
                )
            time.sleep(0.5)
    return True


def _systemd() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


# Who started the daemon, written beside its pid: `make down` stops the daemon `make up` (or
# `make dev`) started, never the one a `make test` around it started and will stop itself.
_BY_COMMANDS = "commands"  # make up, make dev, engine start: make down / engine stop stop it
_BY_RUN = "run"  # engine run -- CMD: stopped when CMD ends, by it alone


def start_daemon(timeout_s: float = 90, *, by: str = _BY_COMMANDS) -> bool:
    """Start dockerd unless one answers; True if this call started it (recorded as `by`)."""
    if daemon_answers():
        return False
    host = os.environ.get("DOCKER_HOST", "")
    if host and host != "unix:///var/run/docker.sock":
        raise EngineError(
            f"DOCKER_HOST={host} does not answer: start that engine, or unset DOCKER_HOST "
            "to use this machine's"
        )
    ensure_installed()
    if os.geteuid() != 0:
        raise EngineError(
            "no Docker daemon answers and starting one needs root: "
            "`sudo systemctl start docker` (or `sudo dockerd &`), then rerun"
        )
    ensure_privileged_containers()
    print("starting dockerd: no Docker daemon answers", file=sys.stderr, flush=True)
    if _systemd():
        subprocess.run(["systemctl", "start", "docker"], check=False, capture_output=True)
        _PIDFILE.parent.mkdir(parents=True, exist_ok=True)
        _PIDFILE.write_text(f"systemd {by}\n")
    else:
        _LOG.parent.mkdir(parents=True, exist_ok=True)
        with _LOG.open("ab") as log:
            proc = subprocess.Popen(
                ["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _PIDFILE.write_text(f"{proc.pid} {by}\n")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if daemon_answers():
            return True
        time.sleep(1)
    stop_daemon(by=by)
    raise EngineError(f"dockerd did not answer within {timeout_s:.0f} s: see {_LOG}")


def stop_daemon(timeout_s: float = 60, *, by: str = _BY_COMMANDS) -> bool:
    """Stop the dockerd that `start_daemon(by=by)` started (none other); True if one was
    stopped."""
    if not _PIDFILE.exists():
        return False
    owner, _, started_by = _PIDFILE.read_text().strip().partition(" ")
    if (started_by or _BY_COMMANDS) != by:
        return False
    _PIDFILE.unlink()
    print("stopping the dockerd started for this run", file=sys.stderr, flush=True)
    if owner == "systemd":
        subprocess.run(
            ["systemctl", "stop", "docker", "docker.socket"], check=False, capture_output=True
        )
        return True
    pid = int(owner)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            time.sleep(0.5)
        else:
            os.kill(pid, signal.SIGKILL)
    return True


@contextlib.contextmanager
def running_daemon() -> Iterator[None]:
    """A daemon for the block: started if none answers, and then stopped after it."""
    started = start_daemon(by=_BY_RUN)
    try:
        yield
    finally:
        if started:
            stop_daemon(by=_BY_RUN)


def _dispatch(args: list[str]) -> int | None:
    if args == ["install"]:
        ensure_installed()
    elif args == ["start"]:
        ensure_installed()
        start_daemon()
    elif args == ["privileged"]:
        ensure_privileged_containers()
    elif args == ["stop"]:
        stop_daemon()
    elif args[:2] == ["run", "--"] and len(args) > 2:
        ensure_installed()
        with running_daemon():
            return subprocess.run(args[2:], check=False).returncode
    else:
        return None
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli(_dispatch, __doc__ or "", argv)


if __name__ == "__main__":
    raise SystemExit(main())
