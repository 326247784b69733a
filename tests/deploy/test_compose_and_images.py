"""docker-compose.yml against the compose specification; the Dockerfile against hadolint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from tunefleet_dev.images import official_defaults

from .conftest import ROOT, SERVICES

SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is a dev dependency: run `uv sync`"
    return found


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("check-jsonschema"), "--schemafile", str(SCHEMA), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_file_validates_against_the_vendored_compose_spec() -> None:
    result = _check_compose(ROOT / "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  worker:\n    image: x\n    replicas_typo: 3\n")
    assert _check_compose(broken).returncode != 0


def test_compose_gates_on_health_and_requires_credentials(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert "healthcheck" in services[dependency], dependency
    assert compose["volumes"].keys() == {"rabbitmq-data", "mongodb-data"}
    text = (ROOT / "docker-compose.yml").read_text()
    for variable in ("RABBITMQ_USER", "RABBITMQ_PASSWORD", "MONGO_USER", "MONGO_PASSWORD"):
        # `:?` makes compose refuse to start without it: no default credentials anywhere.
        uses = re.findall(rf"\$\{{{variable}(:?[?-][^}}]*)?\}}", text)
        assert uses and all(u.startswith(":?") for u in uses), variable
    assert services["worker"]["deploy"]["replicas"] == "${WORKERS:-3}"
    assert {"demo"} == set(services["demo"]["profiles"])
    assert {"test"} == set(services["tests"]["profiles"])
    for name in SERVICES:
        assert services[name]["build"]["target"] == name
        assert services[name]["user"] == "10001:10001"
        assert services[name]["read_only"] is True


STANDINS = sorted((ROOT / "deploy" / "images").glob("*.Dockerfile"))


@pytest.mark.parametrize("dockerfile", [ROOT / "Dockerfile", *STANDINS], ids=lambda p: p.name)
def test_dockerfiles_pass_hadolint(dockerfile: Path) -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", [ROOT / "Dockerfile", *STANDINS], ids=lambda p: p.name)
def test_no_dockerfile_asks_for_a_frontend_image(dockerfile: Path) -> None:
    """A `# syntax=` line makes BuildKit pull a frontend image: no build without Docker Hub."""
    assert not re.search(r"^#\s*syntax\s*=", dockerfile.read_text(), re.M | re.I)


def test_the_bases_are_variables_with_the_official_images_as_defaults(
    compose: dict[str, Any],
) -> None:
    """PYTHON_IMAGE, UV_IMAGE (build args), RABBITMQ_IMAGE, MONGO_IMAGE (compose): the
    official images unless set, so that stand-ins are chosen without editing a file."""
    defaults = official_defaults()
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", defaults["PYTHON_IMAGE"])
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", defaults["UV_IMAGE"])
    assert re.fullmatch(r"rabbitmq:3\.13\.\d+-management", defaults["RABBITMQ_IMAGE"])
    assert re.fullmatch(r"mongo:7\.0\.\d+", defaults["MONGO_IMAGE"])
    services = compose["services"]
    for service, variable in (("rabbitmq", "RABBITMQ_IMAGE"), ("mongodb", "MONGO_IMAGE")):
        assert services[service]["image"] == f"${{{variable}:-{defaults[variable]}}}"
    for name, service in services.items():
        if "build" in service:
            # Unset in the environment: the Dockerfile's own default applies.
            assert service["build"]["args"] == ["PYTHON_IMAGE", "UV_IMAGE"], name
            assert service["build"]["secrets"] == ["ca"], name
    # Without a CA to pass, the secret is a file in the project with no certificate in it.
    default = "./deploy/images/no-build-ca.pem"
    assert compose["secrets"]["ca"] == {"file": f"${{TUNEFLEET_BUILD_CA:-{default}}}"}
    assert "BEGIN CERTIFICATE" not in (ROOT / default).read_text()


def test_the_docker_context_names_every_workspace_member() -> None:
    """BuildKit before 0.10 ignores `!libs/*/src/`: each member must be listed by name."""
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    lines = set((ROOT / ".dockerignore").read_text().splitlines())
    for member in members["members"]:
        assert f"!{member}/pyproject.toml" in lines and f"!{member}/src/" in lines, member
    assert not [line for line in lines if line.startswith("!") and "*" in line]


def _stages(text: str) -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if match:
            current = stages.setdefault(match.group(2) or match.group(1), [])
        current.append(line)
    return stages


def test_images_build_dependencies_first_and_run_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", text)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base.group(1))
    stages = _stages(text)
    runtime = stages["runtime"]
    assert any(re.fullmatch(r"USER [1-9]\d*:[1-9]\d*", line) for line in runtime)
    for service in SERVICES:
        assert stages[service][0] == f"FROM runtime AS {service}"
        assert not any(line.startswith("USER") for line in stages[service])
        build = stages[f"build-{service}"]
        steps = [line.split()[0] for line in build]
        deps = next(i for i, line in enumerate(build) if "--no-install-workspace" in line)
        code = next(i for i, line in enumerate(build) if line.startswith("COPY") and "src" in line)
        assert deps < code, f"{service}: code is copied before the dependency layer"
        assert "COPY" not in steps[:deps]
        assert (
            f"--frozen --no-dev --no-install-workspace --package tunefleet-{service}"
            in (build[deps])
        )
        assert f"--frozen --no-dev --no-editable --package tunefleet-{service}" in build[-1]
        assert f'CMD ["python", "-m", "tunefleet_{service}"]' in stages[service]
        # The contract, the runtime and the service itself: no client, no dev tooling.
        copied = {line.split()[1] for line in build if line.startswith("COPY") and "src" in line}
        assert copied == {"libs/contract/src", "libs/runtime/src", f"services/{service}/src"}


def test_compose_dashboard_runs_the_client_image_on_the_hosts_loopback_only(
    compose: dict[str, Any],
) -> None:
    dashboard = compose["services"]["dashboard"]
    assert dashboard["build"]["target"] == "client"
    assert dashboard["image"] == compose["services"]["demo"]["image"], "one client image"
    assert dashboard["command"] == ["tunefleet", "dashboard"]
    assert dashboard["user"] == "10001:10001" and dashboard["read_only"] is True
    assert dashboard["cap_drop"] == ["ALL"]
    assert "profiles" not in dashboard, "up with the pipeline"
    (port,) = dashboard["ports"]
    assert port == "127.0.0.1:${DASHBOARD_PORT:-8765}:8765"
    # 0.0.0.0 inside the container from the shared config file, never the code's default.
    assert "k8s/base/config/dashboard.env" in dashboard["env_file"]
    config = (ROOT / "k8s/base/config/dashboard.env").read_text()
    assert re.search(r"^TUNEFLEET_DASHBOARD_HOST=0\.0\.0\.0$", config, re.M)
    assert re.search(r"^TUNEFLEET_DASHBOARD_PORT=8765$", config, re.M)
    probe = " ".join(dashboard["healthcheck"]["test"])
    assert "http://127.0.0.1:8765/readyz" in probe
    assert set(dashboard["depends_on"]) == {"rabbitmq", "mongodb"}
    # No token baked in: it comes from .env, if at all.
    assert dashboard["environment"]["TUNEFLEET_DASHBOARD_TOKEN"] == "${TUNEFLEET_DASHBOARD_TOKEN:-}"


def test_compose_demo_runs_the_client_image(compose: dict[str, Any]) -> None:
    demo = compose["services"]["demo"]
    assert demo["build"]["target"] == "client"
    assert "FROM runtime AS client" in _stages((ROOT / "Dockerfile").read_text())["client"]


def test_dockerignore_keeps_the_context_to_what_is_copied() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*")] == "*", "everything is excluded unless listed"
    assert "!.env" not in lines


@pytest.mark.parametrize("service", SERVICES)
def test_worker_image_uses_cpu_only_xgboost(service: str) -> None:
    pyproject = (ROOT / "services" / service / "pyproject.toml").read_text()
    if service == "worker":
        assert '"xgboost-cpu' in pyproject
    assert '"xgboost>' not in pyproject and '"xgboost"' not in pyproject


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = re.sub(r"^\$\{[A-Z_]+:-(.+)\}$", r"\1", service["image"])  # a variable's default
        tag = image.rpartition(":")[2]
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {service['image']}"


def test_compose_demo_command_is_one_the_cli_accepts(compose: dict[str, Any]) -> None:
    demo = compose["services"]["demo"]
    program, subcommand, spec, *options = demo["command"]
    assert (program, subcommand) == ("tunefleet", "submit")
    (mount,) = demo["volumes"]
    host, container, _ = mount.split(":")
    assert spec.startswith(container + "/")
    assert (ROOT / host / spec.removeprefix(container + "/")).is_file()
    result = subprocess.run(
        [_tool("tunefleet"), subcommand, "--help"], capture_output=True, text=True, check=True
    )
    for option in (o for o in options if o.startswith("--")):
        assert option in result.stdout, option
