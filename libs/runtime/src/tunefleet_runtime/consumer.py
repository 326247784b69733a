"""One consumer runtime for every service: connect, consume, guard, reconnect, stop.

A service supplies, per queue, a decoder and a handler (`Subscription`). The runtime owns what
is the same everywhere:

- the size limit, decoding, and refusal: a message that is not one (`DecodeError`) or that the
  service will not process (`RefusalError`: a policy, such as a limit or a library this worker does
  not run) goes to the dead-letter exchange with the reason, and is acked; so does one whose
  handler fails (not a lost connection);
- reconnection with backoff after a lost connection (`serve_until_stopped`);
- the connection loop, which must keep running for pika to send heartbeats: handlers that work
  long (the worker's training) run on a thread of their own and hand results and acks back with
  `Delivery.threadsafe`, which queues them onto this loop (`add_callback_threadsafe`);
- stopping: consumers are cancelled first, then the service may finish what it holds
  (`on_stop`), then the connection closes, which hands anything unacked back to the broker;
- restarting on a new connection when the service asks (`restart`): the broker closed its
  consuming channel (`consumer_timeout`) and nothing would be delivered any more.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_contract.messages import DecodeError
from tunefleet_contract.topology import Topology
from tunefleet_runtime.broker import (
    CONNECTION_ERRORS,
    connect,
    dead_letter,
    delivery_attempt,
    handed_back_headers,
    preemptions,
    publish,
    topology_of,
)
from tunefleet_runtime.service import serve_until_stopped
from tunefleet_runtime.settings import BrokerSettings

__all__ = ["ConsumerRuntime", "Delivery", "RefusalError", "Subscription"]

log = logging.getLogger(__name__)

M = TypeVar("M")


class RefusalError(Exception):
    """A well-formed message that this service will not process (over a limit, a library this
    worker does not run, a spec that fails validation): dead-lettered with this reason. Not a
    `DecodeError`, which says the bytes are not a valid message at all."""


@dataclass
class Delivery(Generic[M]):
    """One message in hand, decoded, and what is needed to settle it."""

    connection: pika.BlockingConnection
    channel: BlockingChannel
    topology: Topology
    queue: str
    tag: int
    properties: pika.BasicProperties
    body: bytes
    message: M

    @property
    def attempt(self) -> int:
        """Which delivery of the message this is (1 for the first)."""
        return delivery_attempt(self.properties)

    @property
    def preemptions(self) -> int:
        """How often the message was handed back by a worker told to stop (`hand_back`)."""
        return preemptions(self.properties)

    def ack(self, *, multiple: bool = False) -> None:
        """On the connection's thread; `multiple` also acks every earlier unacked delivery."""
        self.channel.basic_ack(self.tag, multiple=multiple)

    def dead_letter(self, reason: str) -> None:
        """On the connection's thread: send it to the dead-letter exchange with the reason
        (confirmed); the caller then acks it."""
        dead_letter(self.channel, self.topology, self.body, self.properties, reason, self.queue)

    def requeue(self) -> None:
        """On the connection's thread: hand it back to the queue, to be delivered again."""
        self.channel.basic_nack(self.tag, requeue=True)

    def hand_back(self, body: bytes | None = None) -> None:
        """On the connection's thread: put the message (or `body`, what is left of it) at the
        end of its queue as a new message, confirmed, with one more preemption in its headers
        (`broker.handed_back_headers`); the caller then acks this delivery. Unlike a requeue
        or a lost connection, this counts nothing against the queue's delivery limit. A death
        between the two leaves both copies to be delivered: a duplicate, never a loss."""
        headers = handed_back_headers(self.properties)
        publish(self.channel, "", self.queue, self.body if body is None else body, headers)

    def requeue_later(self, delay_s: float) -> None:
        """On the connection's thread: hand it back after `delay_s`, from the loop. A handler
        that must try again later returns at once instead of sleeping, so the loop goes on
        sending heartbeats meanwhile; the message stays unacked (in hand) until then."""

        def requeue() -> None:
            if self.channel.is_open:  # else the lost connection handed it back already
                self.requeue()

        self.connection.call_later(delay_s, requeue)

    def threadsafe(self, callback: Callable[[], None]) -> bool:
        """From another thread: run `callback` on the connection's thread, in its loop. False
        when the connection is gone (the broker then redelivers the message)."""
        try:
            self.connection.add_callback_threadsafe(callback)
        except (pika.exceptions.ConnectionWrongStateError, *CONNECTION_ERRORS):
            return False
        return True


@dataclass(frozen=True)
class Subscription(Generic[M]):
    """A queue, how to read its messages, and what to do with each.

    `decode` raises `DecodeError` or `RefusalError`. `handle` settles the delivery: acks it (now, or
    later from any thread through `Delivery.threadsafe`), or lets the connection's loss hand it
    back. `refused` is told of each delivery that was dead-lettered instead (default: ack it at
    once; a service that acks in batches takes it into its batch). `dead_letters=False` is
    for the dead-letter queues themselves: no size limit, and a refusal is only logged, since
    a message sent back to the dead-letter exchange would come round again; and for a second
    copy of events that the collector's queue dead-letters already (the planner's)."""

    queue: str
    decode: Callable[[bytes], M]
    handle: Callable[[Delivery[M]], None]
    refused: Callable[[Delivery[None]], None] | None = None
    dead_letters: bool = True


class ConsumerRuntime:
    """Consumes `subscriptions` on one channel until `stopping` is set, reconnecting on loss.

    Hooks, all on the connection's thread: `on_connect(connection, channel)` before consuming
    (a service's per-connection state: a batch channel, the control stream); `tick()` after
    every turn of the loop, returning how long the next turn may wait for messages; `on_stop`
    once consuming has been cancelled; `on_lost` after a lost connection, before reconnecting.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        stopping: threading.Event,
        subscriptions: Sequence[Subscription[Any]],
        *,
        prefetch: int,
        on_connect: Callable[[pika.BlockingConnection, BlockingChannel], None] | None = None,
        tick: Callable[[], float] | None = None,
        on_stop: Callable[[pika.BlockingConnection], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        turn_s: float = 0.2,
    ) -> None:
        self.settings = settings
        self.topology = topology_of(settings)
        self.stopping = stopping
        self.subscriptions = subscriptions
        self.prefetch = prefetch
        self._on_connect = on_connect
        self._tick = tick
        self._on_stop = on_stop
        self._on_lost = on_lost
        self._turn_s = turn_s
        self._restart = threading.Event()

    def run(self) -> None:
        serve_until_stopped(self._serve, self.stopping, on_lost=self._on_lost)

    def restart(self) -> None:
        """On the connection's thread: end this connection after the current turn and start
        consuming on a new one (the broker closed a channel, and consuming must resume)."""
        self._restart.set()

    def _serve(self) -> None:
        connection, channel = connect(self.settings, stopping=self.stopping)
        try:
            if self.stopping.is_set():
                # Stopped while connecting (a SIGTERM during a reconnect): consuming now would
                # take a message only to hand it back, one more delivery towards its limit.
                return
            if self._on_connect is not None:
                self._on_connect(connection, channel)
            channel.basic_qos(prefetch_count=self.prefetch)
            tags = [
                channel.basic_consume(
                    sub.queue, on_message_callback=functools.partial(self._deliver, connection, sub)
                )
                for sub in self.subscriptions
            ]
            wait_s = self._turn_s
            while not self.stopping.is_set() and not self._restart.is_set():
                connection.process_data_events(time_limit=wait_s)
                if self._tick is not None:
                    wait_s = self._tick()
            if channel.is_open:
                for tag in tags:
                    channel.basic_cancel(tag)
            if self._on_stop is not None and self.stopping.is_set():
                self._on_stop(connection)
        finally:
            self._restart.clear()
            if connection.is_open:
                # Closing with deliveries unacked hands them back to the broker for redelivery.
                connection.close()

    def _deliver(
        self,
        connection: pika.BlockingConnection,
        sub: Subscription[Any],
        channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        def delivery(message: M) -> Delivery[M]:
            return Delivery(
                connection,
                channel,
                self.topology,
                sub.queue,
                method.delivery_tag,
                properties,
                body,
                message,
            )

        try:
            limit = self.settings.tunefleet_max_message_bytes
            if sub.dead_letters and len(body) > limit:
                raise RefusalError(f"message of {len(body):,} bytes is over the size limit")
            message = sub.decode(body)
        except Exception as exc:  # whatever a message does to decoding, it must not stop us
            self._refuse(sub, delivery(None), exc)
            return
        try:
            sub.handle(delivery(message))
        except CONNECTION_ERRORS:
            raise  # the loop reconnects; the broker redelivers what was in hand
        except Exception as exc:  # a message that breaks its handler must not stop the service
            log.exception("cannot handle a message from %s", sub.queue)
            self._refuse(sub, delivery(None), exc)

    def _refuse(self, sub: Subscription[Any], delivery: Delivery[None], exc: Exception) -> None:
        reason = (
            str(exc)
            if isinstance(exc, DecodeError | RefusalError)
            else f"{type(exc).__name__}: {exc}"
        )
        if sub.dead_letters:
            delivery.dead_letter(reason)
        else:
            log.error("cannot process a message from %s: %s", sub.queue, reason[:500])
        if sub.refused is not None:
            sub.refused(delivery)
        else:
            delivery.ack()
