"""The service images as built: non-root, nothing but their own code and dependencies, and a
code edit that rebuilds the code layers only."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from tunefleet_dev import engine, images

from tests.containers.conftest import SERVICES, ComposeStack, docker

# What no service image may hold: the client and its CLI libraries, the dev tooling, test and
# lint tools, uv. Each service's own package is there; the others' are not.
FORBIDDEN = ("tunefleet", "typer", "rich", "tunefleet_dev", "testcontainers", "pytest", "mypy")
PROBE = """
import importlib.util, json, os, shutil, sys
print(json.dumps({
    "found": [m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None],
    "uv": shutil.which("uv"),
    "uid": os.getuid(),
    "sources": [p for p in ("/src", "/app/libs", "/app/services") if os.path.exists(p)],
}))
"""


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_runs_as_its_non_root_user(compose_stack: ComposeStack, service: str) -> None:
    for container in compose_stack.containers(service):
        config = compose_stack.inspect(container)["Config"]
        assert config["User"] == "10001:10001"
        pid1 = docker("exec", container, "cat", "/proc/1/status")
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", pid1, re.M)
        assert uids and uids.groups() == ("10001", "10001"), pid1


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_image_holds_its_service_and_nothing_else(
    compose_stack: ComposeStack, service: str
) -> None:
    image = compose_stack.inspect(compose_stack.containers(service)[0])["Config"]["Image"]
    modules = [*FORBIDDEN, *(f"tunefleet_{s}" for s in SERVICES)]
    out = docker("run", "--rm", "--entrypoint", "python", image, "-c", PROBE, *modules)
    found = json.loads(out)
    assert found["found"] == [f"tunefleet_{service}"], found
    assert (found["uv"], found["uid"], found["sources"]) == (None, 10001, []), found


def _context(tmp: Path) -> Path:
    """The build context as git has it, in a scratch directory that can be edited."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=images.ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = images.ROOT / name.decode()
        if source.is_file():
            target = tmp / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return tmp


def _build(context: Path, resolution: images.Resolution) -> dict[str, str]:
    """Build the worker; each step's name -> "CACHED" or "built" (BuildKit's plain output)."""
    result = subprocess.run(
        [
            engine.docker(),
            "build",
            "--progress=plain",
            "--target",
            "worker",
            *images.build_args(resolution),
            ".",
        ],
        cwd=context,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    names = dict(re.findall(r"^(#\d+) \[([^\]]+\] .+)$", result.stderr, re.M))
    cached = set(re.findall(r"^(#\d+) CACHED$", result.stderr, re.M))
    return {step: ("CACHED" if number in cached else "built") for number, step in names.items()}


@pytest.mark.usefixtures("docker_daemon")
def test_editing_a_service_module_rebuilds_only_the_code_layers(tmp_path: Path) -> None:
    resolution = images.resolve(("PYTHON_IMAGE", "UV_IMAGE"))
    context = _context(tmp_path)
    _build(context, resolution)  # as the stack's: everything from the cache
    module = context / "services" / "worker" / "src" / "tunefleet_worker" / "__init__.py"
    # A new edit each run: BuildKit's cache is by content, and would have an edit made before.
    module.write_text(module.read_text() + f"\n# edited {uuid.uuid4().hex}\n")
    steps = _build(context, resolution)

    def state(pattern: str) -> str:
        (found,) = [s for step, s in steps.items() if re.search(pattern, step)]
        return found

    assert state(r"build-worker .*--no-install-workspace --package tunefleet-worker") == "CACHED"
    assert state(r"build-worker .*COPY libs/runtime/src") == "CACHED"
    assert state(r"build-worker .*COPY services/worker/src") == "built"
    assert state(r"build-worker .*--no-editable --package tunefleet-worker") == "built"
