"""The consumer runtime on a real broker: a service told to stop while it was connecting takes
nothing from its queue (each delivery it took would count towards the message's limit)."""

from __future__ import annotations

import threading
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_contract.topology import Topology
from tunefleet_runtime.consumer import ConsumerRuntime, Subscription
from tunefleet_runtime.settings import ClientSettings


def test_a_runtime_stopped_while_connecting_consumes_nothing(
    settings: ClientSettings, topology: Topology, channel: BlockingChannel
) -> None:
    channel.basic_publish("", topology.trials_queue, b"a trial")
    handled: list[Any] = []
    connected: list[Any] = []
    stopping = threading.Event()
    stopping.set()  # the SIGTERM came while `connect` was retrying
    runtime = ConsumerRuntime(
        settings,
        stopping,
        [Subscription(topology.trials_queue, lambda body: body, handled.append)],
        prefetch=1,
        on_connect=lambda connection, _channel: connected.append(connection),
    )
    runtime._serve()
    assert handled == [] and connected == []
    # Still there, never delivered: its delivery count is that of a message never taken.
    _method, properties, body = channel.basic_get(topology.trials_queue, auto_ack=True)
    assert body == b"a trial"
    assert not (properties.headers or {}).get("x-delivery-count")
