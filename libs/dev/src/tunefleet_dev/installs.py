"""What the dev tooling installs for itself: Debian packages, and tools built from the Go module
proxy, cached by version under ~/.cache/tunefleet. Each install says what and why, once.

Some tools cannot be had as release binaries where only the package registries answer, and some
of their modules refuse `go install` (exclude or replace directives only count in the main
module). Each is built the way that works for all of them: in a scratch module that requires
the tool's module at one version, then `go build` of its command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CACHE",
    "FERRETDB_VERSION",
    "GoTool",
    "ToolError",
    "apt_install",
    "build_script",
    "cli",
    "ensure_ferretdb",
    "go_binary",
]

CACHE = Path(os.environ.get("TUNEFLEET_CACHE", str(Path.home() / ".cache" / "tunefleet")))
# Builds what the Go module proxy alone cannot give as one `go build` (Kubernetes, Tilt); also
# run by deploy/cluster/controlplane.py, which must stay importable without this package.
BUILD_SCRIPT = Path(__file__).resolve().parents[4] / "deploy" / "cluster" / "build.sh"


class ToolError(RuntimeError):
    """A tool could not be found, built or run; the text says which and what to do."""


def cli(dispatch: Callable[[list[str]], int | None], usage: str, argv: list[str] | None) -> int:
    """A dev tool's command line: `dispatch` runs a command (None: no such command, so the
    usage is printed); a ToolError is one `error:` line. Both exit with status 2."""
    try:
        status = dispatch(list(sys.argv[1:] if argv is None else argv))
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if status is None:
        print(usage, file=sys.stderr)
        return 2
    return status


def apt_install(package: str, why: str) -> None:
    """Debian's `package`, installed as root with apt-get; else an error saying how."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise ToolError(f"{package} is not installed: `apt-get install -y {package}` as root")
    print(f"installing {package} (Debian package): {why}", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        _run(step, package, ".", env, "installing")


def build_script(what: str, version: str, target: Path, title: str) -> None:
    """Run deploy/cluster/build.sh for `what` at `version` into `target`, its output in a log
    beside `target`; a failure raises ToolError with the log's last lines (`title`: what was
    being built, as the user knows it)."""
    log = target.with_name(target.name + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT), what, version, str(target)],
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise ToolError(f"building {title} failed (log: {log}):\n{tail}")


def go_binary() -> str:
    found = shutil.which("go")
    if found is None and Path("/usr/local/go/bin/go").exists():
        found = "/usr/local/go/bin/go"
    if found is None:
        raise ToolError("a Go toolchain (1.21 or later) is needed to build the tools: install Go")
    return found


def _run(
    step: list[str], what: str, cwd: str | Path, env: dict[str, str], doing: str = "building"
) -> str:
    result = subprocess.run(step, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-2000:]
        raise ToolError(f"{doing} {what} failed at `{' '.join(step)}`: {tail}")
    return result.stdout


@dataclass(frozen=True)
class GoTool:
    """One command of one module at one version, and why the project needs it."""

    name: str
    module: str
    version: str
    package: str
    why: str
    # -X flags for the version the tool reports (its own release builds set them the same way).
    version_variable: str = ""
    # A main package of our own (Go source) instead of `package`: a command assembled from the
    # module's packages (CoreDNS with only the plugins a cluster uses). `package` is then the
    # module to require.
    main: str = ""

    @property
    def binary(self) -> Path:
        return CACHE / "bin" / f"{self.name}-{self.version}"

    def ensure(self) -> Path:
        """The cached binary, built first if missing (saying what and why, once)."""
        if self.binary.exists():
            return self.binary
        print(
            f"building {self.name} {self.version} from the Go module {self.module} into "
            f"{self.binary.parent} (a few minutes, once): {self.why}",
            file=sys.stderr,
            flush=True,
        )
        go = go_binary()
        env = {**os.environ, "GOWORK": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
        ldflags = "-s -w"
        if self.version_variable:
            ldflags += f" -X {self.version_variable}={self.version}"
        self.binary.parent.mkdir(parents=True, exist_ok=True)
        partial = self.binary.with_name(self.binary.name + ".partial")
        with tempfile.TemporaryDirectory(prefix=f"{self.name}-build-") as work:
            target = self.package
            steps = [
                [go, "mod", "init", f"tunefleet.local/{self.name}-build"],
                [go, "get", f"{self.package}@{self.version}"],
            ]
            if self.main:
                (Path(work) / "main.go").write_text(self.main)
                steps.append([go, "mod", "tidy"])
                target = "."
            steps.append(
                [
                    go,
                    "build",
                    "-p",
                    "2",
                    "-trimpath",
                    "-ldflags",
                    ldflags,
                    "-o",
                    str(partial),
                    target,
                ]
            )
            for step in steps:
                _run(step, self.name, work, env)
        partial.rename(self.binary)
        return self.binary


FERRETDB_VERSION = "v1.24.2"


def ensure_ferretdb() -> Path:
    """FerretDB, the MongoDB-protocol server of the tests, the demo and the mongo stand-in."""
    binary = CACHE / "bin" / f"ferretdb-{FERRETDB_VERSION}"
    if binary.exists():
        return binary
    go = go_binary()
    print(
        f"building FerretDB {FERRETDB_VERSION} from its Go module into {binary.parent} "
        "(a few minutes, once): the MongoDB-protocol server of the tests and the demo",
        file=sys.stderr,
    )
    module = f"github.com/FerretDB/FerretDB@{FERRETDB_VERSION}"
    env = dict(os.environ)
    download = _run([go, "mod", "download", "-json", module], module, ".", env)
    source = Path(json.loads(download)["Dir"])
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
            "FerretDB",
            work,
            {**env, "CGO_ENABLED": "0"},
        )
        partial.rename(binary)
    return binary
