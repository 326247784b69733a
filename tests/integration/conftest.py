from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_contract.topology import Topology
from tunefleet_runtime.broker import connect, topology_of
from tunefleet_runtime.settings import ClientSettings

from tests.support.broker import Running


@pytest.fixture
def topology(settings: ClientSettings) -> Topology:
    return topology_of(settings)


@pytest.fixture
def channel(settings: ClientSettings) -> Iterator[BlockingChannel]:
    """A confirmed channel on the test's own namespace, topology declared."""
    connection, chan = connect(settings, retry_for_s=10)
    yield chan
    if connection.is_open:
        connection.close()


@pytest.fixture
def run_service() -> Iterator[Callable[[Any], Running]]:
    started: list[Running] = []

    def start(service: Any) -> Running:
        running = Running(service)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.alive:
            running.stop()
