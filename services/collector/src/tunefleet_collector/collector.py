"""Events in, MongoDB documents out: the only writer, batched, idempotent, acks after writing."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pymongo.database import Database
from pymongo.errors import PyMongoError
from tunefleet import observability
from tunefleet.broker import CONNECTION_ERRORS, REASON_HEADER, connect, dead_letter, topology_of
from tunefleet.messages import (
    DecodeError,
    Event,
    TrialMessage,
    TrialResult,
    decode_event,
)
from tunefleet.settings import CollectorSettings
from tunefleet.store import connect_store, ensure_indexes, write_events

__all__ = ["Collector", "dead_trial_results"]

log = logging.getLogger(__name__)


def _death_reason(properties: pika.BasicProperties) -> str:
    headers: dict[str, Any] = properties.headers or {}
    if REASON_HEADER in headers:
        return str(headers[REASON_HEADER])
    deaths = headers.get("x-death") or []
    if deaths and isinstance(deaths[0], dict):
        reason = str(deaths[0].get("reason", "dead-lettered"))
        return "delivery-limit" if reason == "delivery_limit" else reason
    return "dead-lettered"


def dead_trial_results(body: bytes, properties: pika.BasicProperties) -> list[TrialResult]:
    """A dead-lettered trial message becomes one `failed` result per trial, with the reason."""
    try:
        message = TrialMessage.decode(body)
    except DecodeError:
        return []  # not a trial message: it stays in the dead-letter queue for people to read
    reason = _death_reason(properties)
    attempts = int((properties.headers or {}).get("x-delivery-count", 0)) + 1
    return [
        TrialResult(
            study_id=message.study_id,
            trial_id=trial.trial_id,
            library=trial.library,
            params=trial.params,
            status="failed",
            reason="delivery-limit" if reason == "delivery-limit" else "rejected",
            error=reason,
            metric=message.metric,
            task=message.task,
            worker="",
            attempts=max(1, attempts),
            finished_at=time.time(),
        )
        for trial in message.trials
    ]


@dataclass
class _Batch:
    events: list[Event] = field(default_factory=list)
    last_tag: int = 0
    first_at: float = 0.0
    deliveries: int = 0

    def add(self, tag: int, events: list[Event]) -> None:
        if self.deliveries == 0:
            self.first_at = time.monotonic()
        self.deliveries += 1
        self.events.extend(events)
        self.last_tag = tag

    def clear(self) -> None:
        self.events.clear()
        self.last_tag = self.deliveries = 0


class Collector:
    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.topology = topology_of(settings)
        self._stopping = False
        self._db: Database[dict[str, Any]] | None = None
        self.stored = 0

    def stop(self) -> None:
        self._stopping = True

    def run(self) -> None:
        while not self._stopping:
            try:
                self._serve()
            except CONNECTION_ERRORS as exc:
                if self._stopping:
                    break
                log.warning("broker connection lost (%s); reconnecting", exc)
                time.sleep(0.5)

    def _store(self) -> Database[dict[str, Any]]:
        if self._db is None:
            db = connect_store(self.settings)
            ensure_indexes(db)
            self._db = db
        return self._db

    def _serve(self) -> None:
        connection, channel = connect(self.settings)
        batch = _Batch()
        try:
            channel.basic_qos(prefetch_count=self.settings.tunefleet_collector_batch * 2)
            channel.basic_consume(
                self.topology.events_queue,
                on_message_callback=functools.partial(self._on_event, batch),
            )
            channel.basic_consume(
                self.topology.dead_letter_collector_queue,
                on_message_callback=functools.partial(self._on_dead_letter, batch),
            )
            flush_s = self.settings.tunefleet_collector_flush_s
            failures = 0
            while not self._stopping:
                connection.process_data_events(
                    time_limit=flush_s if failures == 0 else min(0.2 * 2**failures, 5.0)
                )
                due = batch.deliveries and (
                    len(batch.events) >= self.settings.tunefleet_collector_batch
                    or time.monotonic() - batch.first_at >= flush_s
                    or failures
                )
                if not due:
                    continue
                try:
                    counts = write_events(self._store(), batch.events)
                except PyMongoError as exc:
                    failures += 1
                    log.warning(
                        "store unavailable (%s); %d events wait unacked", exc, len(batch.events)
                    )
                    continue
                failures = 0
                # Everything delivered on this channel and not yet acked is in this batch.
                channel.basic_ack(batch.last_tag, multiple=True)
                self.stored += counts["trials"]
                observability.WRITE_BATCH_SIZE.observe(len(batch.events))
                log.debug("stored %s from %d deliveries", counts, batch.deliveries)
                batch.clear()
        finally:
            if connection.is_open:
                connection.close()

    def _on_event(
        self,
        batch: _Batch,
        channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        try:
            if len(body) > self.settings.tunefleet_max_message_bytes:
                raise DecodeError(f"message of {len(body):,} bytes is over the size limit")
            event = decode_event(body)
        except DecodeError as exc:
            dead_letter(
                channel, self.topology, body, properties, str(exc), self.topology.events_queue
            )
            batch.add(method.delivery_tag, [])
            return
        batch.add(method.delivery_tag, [event])

    def _on_dead_letter(
        self,
        batch: _Batch,
        channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        batch.add(method.delivery_tag, list(dead_trial_results(body, properties)))
