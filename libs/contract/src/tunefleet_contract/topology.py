"""The whole broker topology, declared in one place.

    studies exchange (direct) ──▶ studies queue ──▶ publisher
    trials exchange (direct)  ──▶ trials queue  ──▶ workers      (delivery-limit → DLX)
    events exchange (topic)   ──▶ events queue  ──▶ collector    (+ any live watcher's queue)
    events ─ trial.result ─▶ planner queue ──▶ the planner (adaptive searches; one consumer)
    events ─ study.cancelled|resumed ─▶ control stream ──▶ every worker reads it from the start
    dead-letter exchange (fanout) ──▶ dead-letters (kept for `tunefleet dead-letters`)
                                  ──▶ dead-letters.collector (records dead trials as failed)

Every queue is a durable quorum queue dead-lettering into the DLX, so nothing is dropped
silently. Declaring is idempotent: every process declares the topology when it connects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CONTROL_KINDS", "Topology", "declare", "declare_watch_queue"]

# The events whose routing keys the control stream binds: what workers must learn of.
CONTROL_KINDS = ("study.cancelled", "study.resumed", "trials.settled")
# A live watcher's queue holds at most this many events; a stalled one drops the oldest
# rather than growing without bound (the watcher re-reads the store now and then).
WATCH_QUEUE_MAX = 100_000


@dataclass(frozen=True)
class Topology:
    namespace: str = "tunefleet"
    delivery_limit: int = 10

    @property
    def studies_exchange(self) -> str:
        return f"{self.namespace}.studies"

    @property
    def studies_queue(self) -> str:
        return f"{self.namespace}.studies"

    @property
    def trials_exchange(self) -> str:
        return f"{self.namespace}.trials"

    @property
    def trials_queue(self) -> str:
        return f"{self.namespace}.trials"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def events_queue(self) -> str:
        return f"{self.namespace}.events.collector"

    @property
    def planner_queue(self) -> str:
        return f"{self.namespace}.events.planner"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.namespace}.dead-letters"

    @property
    def dead_letter_collector_queue(self) -> str:
        return f"{self.namespace}.dead-letters.collector"

    @property
    def control_queue(self) -> str:
        return f"{self.namespace}.control"

    def queue_arguments(self, *, delivery_limit: bool = False) -> dict[str, Any]:
        args: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": self.dead_letter_exchange,
        }
        if delivery_limit:
            args["x-delivery-limit"] = self.delivery_limit
        return args


def declare(channel: Any, topology: Topology) -> None:
    """Declare every exchange, queue and binding (pika BlockingChannel)."""
    t = topology
    channel.exchange_declare(t.dead_letter_exchange, exchange_type="fanout", durable=True)
    for queue in (t.dead_letter_queue, t.dead_letter_collector_queue):
        # Dead letters have nowhere further to go: no DLX on these two.
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(queue, t.dead_letter_exchange)

    channel.exchange_declare(t.studies_exchange, exchange_type="direct", durable=True)
    channel.queue_declare(t.studies_queue, durable=True, arguments=t.queue_arguments())
    channel.queue_bind(t.studies_queue, t.studies_exchange, routing_key="study")

    channel.exchange_declare(t.trials_exchange, exchange_type="direct", durable=True)
    channel.queue_declare(
        t.trials_queue, durable=True, arguments=t.queue_arguments(delivery_limit=True)
    )
    channel.queue_bind(t.trials_queue, t.trials_exchange, routing_key="trial")

    channel.exchange_declare(t.events_exchange, exchange_type="topic", durable=True)
    channel.queue_declare(t.events_queue, durable=True, arguments=t.queue_arguments())
    channel.queue_bind(t.events_queue, t.events_exchange, routing_key="#")
    # Results steer adaptive searches. One consumer at a time (a second planner stands by):
    # a study's search state lives in one process.
    channel.queue_declare(
        t.planner_queue,
        durable=True,
        arguments={**t.queue_arguments(), "x-single-active-consumer": True},
    )
    channel.queue_bind(t.planner_queue, t.events_exchange, routing_key="trial.result")

    # A stream, not a queue: consuming does not remove, so a worker that starts after a cancel
    # reads every cancel and resume from the first offset (kept 7 days; streams have no DLX).
    channel.queue_declare(
        t.control_queue,
        durable=True,
        arguments={"x-queue-type": "stream", "x-max-age": "7D"},
    )
    for kind in CONTROL_KINDS:
        channel.queue_bind(t.control_queue, t.events_exchange, routing_key=kind)


def declare_watch_queue(channel: Any, topology: Topology, routing_key: str = "#") -> str:
    """A live watcher's own queue on the events exchange (CLI progress, `study.wait`).

    Exclusive and auto-deleted: it lives exactly as long as the watcher's connection, so a
    crashed watcher leaves nothing behind. Classic, because quorum queues cannot be exclusive.
    """
    result = channel.queue_declare(
        "",
        exclusive=True,
        auto_delete=True,
        arguments={"x-max-length": WATCH_QUEUE_MAX, "x-overflow": "drop-head"},
    )
    queue: str = result.method.queue
    channel.queue_bind(queue, topology.events_exchange, routing_key=routing_key)
    return queue
