"""Connecting to RabbitMQ, confirmed publishing and dead-lettering, shared by every process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential,
)
from tenacity.stop import stop_base
from tunefleet_contract.topology import Topology, declare
from tunefleet_runtime import observability
from tunefleet_runtime.settings import BrokerSettings

__all__ = [
    "ATTEMPTS_HEADER",
    "CONNECTION_ERRORS",
    "PREEMPTIONS_HEADER",
    "REASON_HEADER",
    "SOURCE_HEADER",
    "BatchChannel",
    "connect",
    "dead_letter",
    "delivery_attempt",
    "handed_back_headers",
    "persistent",
    "preemptions",
    "publish",
    "topology_of",
]

log = logging.getLogger(__name__)

REASON_HEADER = "x-tunefleet-reason"
SOURCE_HEADER = "x-tunefleet-queue"
# A message handed back by a worker told to stop is published again as a new message, whose
# broker-kept delivery count starts from nothing: these carry what it had been through.
PREEMPTIONS_HEADER = "x-tunefleet-preemptions"  # hand-backs so far
ATTEMPTS_HEADER = "x-tunefleet-attempts"  # deliveries before the last hand-back
# Headers the broker sets on a delivery, which a message published again must not carry.
_BROKER_HEADERS = ("x-delivery-count", "x-death", "x-first-death", "x-last-death")

# What a lost or refused connection looks like to pika's blocking adapter.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    ConnectionError,
)


def topology_of(settings: BrokerSettings) -> Topology:
    return Topology(settings.tunefleet_namespace, settings.tunefleet_delivery_limit)


def connect(
    settings: BrokerSettings,
    *,
    retry_for_s: float = 300.0,
    stopping: threading.Event | None = None,
) -> tuple[pika.BlockingConnection, BlockingChannel]:
    """Connect (retrying with exponential backoff), declare the topology, enable confirms.

    `stopping`, when given, ends the retries early: a service told to shut down during a broker
    outage must exit within its grace period, not after `retry_for_s`.
    """
    params = pika.URLParameters(str(settings.rabbitmq_url))
    params.heartbeat = settings.tunefleet_heartbeat_s
    params.blocked_connection_timeout = 300
    params.connection_attempts = 1
    params.socket_timeout = 10

    def attempt() -> tuple[pika.BlockingConnection, BlockingChannel]:
        connection = pika.BlockingConnection(params)
        channel = connection.channel()
        declare(channel, topology_of(settings))
        channel.confirm_delivery()
        observability.watch(connection)
        return connection, channel

    stop: stop_base = stop_after_delay(retry_for_s)
    if stopping is not None:
        stop = stop | stop_when_event_set(stopping)

    def sleep(seconds: float) -> None:
        # Waiting on the event, not time.sleep: a shutdown interrupts the backoff at once.
        if stopping is None:
            time.sleep(seconds)
        else:
            stopping.wait(seconds)

    retrying = Retrying(
        retry=retry_if_exception_type(CONNECTION_ERRORS),
        wait=wait_exponential(multiplier=0.2, max=10),
        stop=stop,
        sleep=sleep,
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    return retrying(attempt)


def persistent(headers: Mapping[str, Any] | None = None) -> pika.BasicProperties:
    return pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        content_type="application/json",
        headers=dict(headers) if headers else None,
        timestamp=int(time.time()),  # whole seconds by AMQP; feeds the queue-lag metric
    )


def publish(
    channel: BlockingChannel,
    exchange: str,
    routing_key: str,
    body: bytes,
    headers: Mapping[str, Any] | None = None,
) -> None:
    """Publish persistently and wait for the broker's confirm (raises if unroutable/nacked)."""
    channel.basic_publish(
        exchange, routing_key, body, properties=persistent(headers), mandatory=True
    )
    observability.health.beat()  # a confirm came back: the connection is working


class BatchChannel:
    """A second channel on a connection, publishing many messages per wait instead of one.

    A confirm-mode BlockingChannel waits for the broker after every publish. This channel is in
    AMQP transaction mode instead, and RabbitMQ answers `tx.commit` only once every queue a
    committed message was routed to has confirmed it (rabbit_channel's maybe_complete_tx; for
    quorum queues that is the Raft commit), failing the channel if one refused it: a commit is
    a publisher confirm for the whole batch.
    """

    def __init__(self, connection: pika.BlockingConnection) -> None:
        self.channel: BlockingChannel = connection.channel()
        self.channel.tx_select()
        self._returned: list[Any] = []
        # pika's blocking adapter hands returns to user callbacks only at the next event
        # dispatch, after the commit has returned; the channel implementation's own callback
        # runs while the commit waits, so `publish` can refuse a batch with a returned message.
        self.channel._impl.add_on_return_callback(
            lambda _channel, method, _properties, _body: self._returned.append(method)
        )

    def publish(self, exchange: str, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish persistently; returns once the broker confirmed all, one round trip in all.

        Raises `UnroutableError` if a message was routed nowhere, like `publish`.
        """
        if not messages:
            return
        self._returned.clear()
        for routing_key, body in messages:
            self.channel.basic_publish(
                exchange, routing_key, body, properties=persistent(), mandatory=True
            )
        self.channel.tx_commit()
        if self._returned:
            raise pika.exceptions.UnroutableError(list(self._returned))
        observability.health.beat()  # a commit came back: the connection is working


def _count(headers: Mapping[str, Any], name: str) -> int:
    try:
        return max(0, int(headers.get(name, 0)))
    except (TypeError, ValueError):
        return 0


def delivery_attempt(properties: pika.BasicProperties | None) -> int:
    """Which delivery of a message this is, 1 for the first: quorum queues count redeliveries
    in `x-delivery-count` (absent on the first), on top of the deliveries before the message
    was last handed back (`ATTEMPTS_HEADER`). Anything unreadable counts as nothing."""
    headers = (properties.headers if properties else None) or {}
    return _count(headers, ATTEMPTS_HEADER) + _count(headers, "x-delivery-count") + 1


def preemptions(properties: pika.BasicProperties | None) -> int:
    """How often the message was handed back by a worker told to stop (0: never)."""
    return _count((properties.headers if properties else None) or {}, PREEMPTIONS_HEADER)


def handed_back_headers(properties: pika.BasicProperties | None) -> dict[str, Any]:
    """The headers of a delivered message published again on a hand-back: its own, less what
    the broker set on the delivery, with one more preemption and its deliveries so far. The
    new message's delivery count starts from nothing, so the delivery limit never counts a
    hand-back; the attempts go on counting from where they were."""
    headers = {
        name: value
        for name, value in ((properties.headers if properties else None) or {}).items()
        if not name.startswith(_BROKER_HEADERS)
    }
    headers[PREEMPTIONS_HEADER] = preemptions(properties) + 1
    headers[ATTEMPTS_HEADER] = delivery_attempt(properties)
    return headers


def dead_letter(
    channel: BlockingChannel,
    topology: Topology,
    body: bytes,
    properties: pika.BasicProperties | None,
    reason: str,
    queue: str,
) -> None:
    """Send a message that cannot be processed to the DLX, saying why; the caller then acks it."""
    headers = dict((properties.headers or {}) if properties else {})
    headers[REASON_HEADER] = reason[:2000]
    headers[SOURCE_HEADER] = queue
    headers["x-tunefleet-dead-at"] = int(time.time())  # AMQP tables carry no floats
    log.warning("dead-lettering a message from %s: %s", queue, reason[:500])
    publish(channel, topology.dead_letter_exchange, queue, body, headers)
