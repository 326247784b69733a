from __future__ import annotations

from collections.abc import Iterator

import pytest
from tunefleet_dev.devservices import ServiceUnavailableError

from tests.chaos.harness import OwnServices, own_services
from tests.conftest import IN_CI


@pytest.fixture(scope="module")
def chaos_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnServices]:
    """A RabbitMQ and a store of the fault-injection run's own: it restarts and stops them."""
    try:
        yield from own_services(tmp_path_factory.mktemp("chaos-services"))
    except ServiceUnavailableError as exc:
        if IN_CI:
            pytest.fail(f"services unavailable in CI: {exc}")
        pytest.skip(f"services unavailable: {exc}")
