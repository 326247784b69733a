"""Real services, started once per session; each test gets its own namespace and database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tunefleet_dev.devservices import Pipeline, Services, ServiceUnavailableError, start_services
from tunefleet_runtime.settings import ClientSettings

IN_CI = bool(os.environ.get("CI"))
# `make test` runs the end-to-end suite in the tests container, against the compose services
# (tests/containers/test_stack.py), and here only what needs this machine's own programs.
E2E_IN_CONTAINER = os.environ.get("TUNEFLEET_E2E_IN_CONTAINER") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not E2E_IN_CONTAINER:
        return
    elsewhere = [
        item
        for item in items
        if item.path.is_relative_to(Path(__file__).parent / "e2e")
        and item.get_closest_marker("host") is None
    ]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [item for item in items if item not in elsewhere]


@pytest.fixture(scope="session")
def services(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Services]:
    """A real RabbitMQ and MongoDB-protocol server; in CI their absence fails the run. Where a
    Docker daemon answers, containers of the images that can be had, else local processes:
    the run's output says which (and why)."""
    try:
        found = start_services(
            tmp_path_factory.mktemp("services"), consumer_timeout_ms=30 * 60 * 1000
        )
    except ServiceUnavailableError as exc:
        if IN_CI:
            pytest.fail(f"services unavailable in CI: {exc}")
        pytest.skip(f"services unavailable: {exc}")
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nservices: {found.origin}")
    yield found
    found.stop()


@pytest.fixture
def isolation() -> dict[str, str]:
    """A namespace and database of the test's own, so tests never see each other's queues."""
    tag = f"t{uuid.uuid4().hex[:10]}"
    return {"TUNEFLEET_NAMESPACE": tag, "MONGODB_DATABASE": tag}


@pytest.fixture
def settings(services: Services, isolation: dict[str, str]) -> ClientSettings:
    return ClientSettings(
        rabbitmq_url=services.rabbitmq_url,
        mongodb_url=services.mongodb_url,
        tunefleet_namespace=isolation["TUNEFLEET_NAMESPACE"],
        mongodb_database=isolation["MONGODB_DATABASE"],
    )


@pytest.fixture
def pipeline(services: Services, isolation: dict[str, str], tmp_path: Path) -> Iterator[Pipeline]:
    """The three services as separate processes; logs under the test's tmp_path."""
    with Pipeline(services, tmp_path / "logs", env=dict(isolation)) as running:
        yield running
