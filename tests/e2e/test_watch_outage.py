"""Waiting on a study survives a broker restart: the watcher falls back to the store and
reconnects, instead of failing the user's `wait` (or `submit --wait`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tunefleet.client import Client
from tunefleet.progress import Progress
from tunefleet_dev.devservices import Pipeline, ServiceUnavailableError
from tunefleet_runtime.records import StudyStatus
from tunefleet_runtime.settings import ClientSettings

from tests.chaos.harness import OwnServices, own_services
from tests.conftest import IN_CI
from tests.support.waiting import wait_until

# Restarts a broker of its own on this machine: not in the tests container.
pytestmark = pytest.mark.host


@pytest.fixture
def own(tmp_path: Path) -> Iterator[OwnServices]:
    """A broker of this test's own: it is restarted mid-study."""
    try:
        yield from own_services(tmp_path / "services")
    except ServiceUnavailableError as exc:
        if IN_CI:
            pytest.fail(f"services unavailable in CI: {exc}")
        pytest.skip(f"services unavailable: {exc}")


def test_wait_survives_a_broker_restart(own: OwnServices, tmp_path: Path) -> None:
    services = own.services()
    settings = ClientSettings(rabbitmq_url=services.rabbitmq_url, mongodb_url=services.mongodb_url)
    client = Client(settings)
    spec = {
        "name": "outage",
        "dataset": "iris",
        "search": {
            "noop": {
                "fixed": {"sleep_s": 0.3},
                "grid": {"score": [round(0.05 * i, 2) for i in range(20)]},
            }
        },
    }
    seen: list[Progress] = []
    outcome: dict[str, StudyStatus | BaseException] = {}

    with Pipeline(services, tmp_path / "logs") as pipeline:
        pipeline.start_all(workers=2)
        study = client.submit(spec)

        def wait() -> None:
            try:
                outcome["status"] = client.wait(study, timeout_s=300, on_progress=seen.append)
            except BaseException as exc:  # reported by the assertion below
                outcome["status"] = exc

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()

        def three_finished() -> bool:
            assert waiter.is_alive(), outcome
            return bool(seen) and seen[-1].finished >= 3

        wait_until(three_finished, what="three finished trials in the progress")
        own.rabbitmq.restart()
        restarted_at = len(seen)
        waiter.join(timeout=300)

    status = outcome.get("status")
    assert isinstance(status, StudyStatus), status
    assert status.done == 20 and status.complete
    assert seen[-1].complete and len(seen) > restarted_at  # it went on reporting afterwards
