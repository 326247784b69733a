"""BatchChannel: many persistent messages per broker round trip, with confirm semantics."""

from __future__ import annotations

import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_contract.topology import Topology
from tunefleet_runtime.broker import BatchChannel

from tests.support.broker import queue_depth, take


def test_a_committed_batch_is_in_the_queue_in_order(
    channel: BlockingChannel, topology: Topology
) -> None:
    batch = BatchChannel(channel.connection)
    bodies = [f"result {i}".encode() for i in range(250)]
    batch.publish(topology.events_exchange, [("trial.result", body) for body in bodies])
    assert queue_depth(channel, topology.events_queue) == 250
    got = take(channel, topology.events_queue, 250)
    assert [body for _, _, body in got] == bodies
    assert all(props.delivery_mode == 2 for _, props, _ in got)


def test_a_batch_with_an_unroutable_message_raises(
    channel: BlockingChannel, topology: Topology
) -> None:
    batch = BatchChannel(channel.connection)
    # The trials exchange routes only "trial"; "nowhere" reaches no queue.
    with pytest.raises(pika.exceptions.UnroutableError):
        batch.publish(topology.trials_exchange, [("trial", b"{}"), ("nowhere", b"{}")])
    # The channel stays usable, and a clean batch after it does not raise.
    batch.publish(topology.events_exchange, [("trial.result", b"ok")])
    assert queue_depth(channel, topology.events_queue) == 1


def test_an_empty_batch_sends_nothing(channel: BlockingChannel, topology: Topology) -> None:
    BatchChannel(channel.connection).publish(topology.events_exchange, [])
    assert queue_depth(channel, topology.events_queue) == 0
