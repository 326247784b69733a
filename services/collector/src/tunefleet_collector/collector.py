"""Events in, stored through the store's boundary (`tunefleet_runtime.store.Store`): batched,
idempotent, acks after writing. Not the only writer: the planner records its decisions and the
results they rest on itself, and blobs (uploaded datasets, models) are the client's and the
workers'."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_contract.messages import (
    DecodeError,
    Event,
    ModelRefit,
    ModelStored,
    StudyRegistered,
    TrialMessage,
    TrialResult,
    TrialsPlanned,
    decode_event,
)
from tunefleet_runtime import observability
from tunefleet_runtime.broker import delivery_attempt, publish, topology_of
from tunefleet_runtime.consumer import ConsumerRuntime, Delivery, Subscription
from tunefleet_runtime.deadletters import death_reason
from tunefleet_runtime.settings import CollectorSettings
from tunefleet_runtime.store import Bound, PlanIncompleteError, Store, bounded, open_store

__all__ = [
    "Collector",
    "dead_refit_models",
    "dead_trial_results",
    "known_studies",
    "of_known_studies",
]

log = logging.getLogger(__name__)

# How long a dead letter of a study the store does not know waits before it is taken for one
# never registered: the registration may still be in a collector's unwritten batch.
UNKNOWN_STUDY_GRACE_S = 2.0


def dead_trial_results(
    body: bytes, properties: pika.BasicProperties, delivery_limit: int
) -> list[TrialResult]:
    """A dead-lettered trial message becomes one `failed` result per trial, with the reason."""
    try:
        message = TrialMessage.decode(body)
    except DecodeError:
        return []  # not a trial message: it stays in the dead-letter queue for people to read
    reason = death_reason(properties.headers)
    attempts = delivery_attempt(properties)
    if reason == "delivery-limit":
        # The broker drops x-delivery-count from the dead-lettered copy; it gave up after the
        # limit's redeliveries, so there were limit + 1 deliveries.
        attempts = max(attempts, delivery_limit + 1)
    return [
        TrialResult.failed(
            message.study_id,
            trial,
            revision=message.revision,
            attempts=attempts,
            reason="delivery-limit" if reason == "delivery-limit" else "rejected",
            error=reason,
            metric=message.metric,
            task=message.task,
        )
        for trial in message.trials
    ]


def dead_refit_models(body: bytes, properties: pika.BasicProperties) -> list[ModelStored]:
    """A dead-lettered refit becomes a `failed` model with the reason, so that whoever waits
    for the model hears why instead of waiting out its timeout."""
    try:
        message = ModelRefit.decode(body)
    except DecodeError:
        return []
    return [
        ModelStored(
            study_id=message.study_id,
            trial_id=message.trial_id,
            library=message.library,
            params=message.params,
            dataset=message.dataset,
            task=message.task,
            status="failed",
            error=death_reason(properties.headers),
            attempts=delivery_attempt(properties),
            finished_at=time.time(),
        )
    ]


DeadEvent = TrialResult | ModelStored


def known_studies(store: Store, in_batch: Collection[str]) -> Callable[[str, list[str]], bool]:
    """Whether a study is known: registered, in this batch, or with these trials in its plan
    (an adaptive plan is the planner's own record, written before its trials are published)."""

    def known(study_id: str, trial_ids: list[str]) -> bool:
        return (
            study_id in in_batch
            or store.study(study_id) is not None
            or bool(store.plan(study_id, trial_ids))
        )

    return known


def of_known_studies(
    events: Sequence[DeadEvent], known: Callable[[str, list[str]], bool]
) -> tuple[list[DeadEvent], dict[str, int]]:
    """The failed results and models made of dead letters, without those of the studies that
    `known(study_id, trial_ids)` says were never registered (nor planned): a message naming an
    unknown study is a dead letter and nothing more, never a stored trial under an id no study
    has. Also how many were left out, by study."""
    trials: dict[str, list[str]] = {}
    for event in events:
        trials.setdefault(event.study_id, []).append(event.trial_id)
    verdicts = {study_id: known(study_id, ids) for study_id, ids in trials.items()}
    dropped: dict[str, int] = {}
    for event in events:
        if not verdicts[event.study_id]:
            dropped[event.study_id] = dropped.get(event.study_id, 0) + 1
    return [e for e in events if verdicts[e.study_id]], dropped


@dataclass(frozen=True)
class _Item:
    """One unacked delivery and the events it carries; kept so that a refused one can be set
    aside."""

    delivery: Delivery[Any]
    events: list[Event]


@dataclass
class _Batch:
    events: list[Event] = field(default_factory=list)
    items: list[_Item] = field(default_factory=list)
    last: Delivery[Any] | None = None
    first_at: float = 0.0
    deliveries: int = 0

    def add(self, delivery: Delivery[Any], events: list[Event]) -> None:
        if self.deliveries == 0:
            self.first_at = time.monotonic()
        self.deliveries += 1
        self.events.extend(events)
        if events:
            self.items.append(_Item(delivery, events))
        self.last = delivery

    def clear(self) -> None:
        self.events.clear()
        self.items.clear()
        self.last = None
        self.deliveries = 0


class Collector:
    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.topology = topology_of(settings)
        self._stopping = threading.Event()
        self._opened: Store | None = None
        self.stored = 0
        self._batch = _Batch()
        self._failures = 0
        self._runtime = ConsumerRuntime(
            settings,
            self._stopping,
            [
                Subscription(
                    self.topology.events_queue,
                    decode_event,
                    lambda delivery: self._batch.add(delivery, [delivery.message]),
                    refused=lambda delivery: self._batch.add(delivery, []),
                ),
                # Already dead letters: anything goes (no decoding to refuse), and nothing read
                # here goes back to the dead-letter exchange, where it would come round again.
                Subscription(
                    self.topology.dead_letter_collector_queue,
                    lambda body: body,
                    lambda delivery: self._batch.add(
                        delivery,
                        [
                            *dead_trial_results(
                                delivery.body,
                                delivery.properties,
                                settings.tunefleet_delivery_limit,
                            ),
                            *dead_refit_models(delivery.body, delivery.properties),
                        ],
                    ),
                    refused=lambda delivery: self._batch.add(delivery, []),
                    dead_letters=False,
                ),
            ],
            prefetch=settings.tunefleet_collector_batch * 2,
            on_connect=self._connected,
            tick=self._flush,
            turn_s=settings.tunefleet_collector_flush_s,
        )
        self.failed_writes = 0  # batches the store could not take (outages), in all
        self._plan_wait_since: float | None = None
        self._waiting_since: float | None = None  # the first of the failed writes in a row
        self._unknown_since: dict[str, float] = {}  # dead letters' studies not (yet) known

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        self._runtime.run()

    def _store(self) -> Store:
        if self._opened is None:
            store = open_store(self.settings)
            store.prepare()
            self._opened = store
        return self._opened

    def _connected(self, _connection: pika.BlockingConnection, _channel: BlockingChannel) -> None:
        # What was delivered on the lost connection comes again; none of it was acked.
        self._batch = _Batch()
        self._failures = 0

    def _flush(self) -> float:
        """After each turn of the loop: write the batch when it is full or old enough, then
        ack everything in it. Returns how long the next turn may wait for deliveries."""
        flush_s = self.settings.tunefleet_collector_flush_s
        batch = self._batch
        due = batch.deliveries and (
            len(batch.events) >= self.settings.tunefleet_collector_batch
            or time.monotonic() - batch.first_at >= flush_s
            or self._failures
        )
        if not due or batch.last is None:
            return flush_s
        # One bound on every store call of this turn: the loop, and with it the broker's
        # heartbeats, is back within TUNEFLEET_STORE_TIMEOUT_S whatever the store does (a
        # stalled store used to hold it for minutes, until the broker dropped the connection).
        with bounded(self.settings.tunefleet_store_timeout_s) as bound:
            try:
                if not self._leave_out_unknown_studies(batch):
                    return flush_s  # a registration may be on its way: the batch waits for it
                counts = self._store().write_events(batch.events)
            except Exception as exc:  # the store's driver, its encoder, the odd OverflowError
                if self._store_is_away(exc, bound) or not self._set_aside(batch, bound):
                    return self._wait(exc, bound, len(batch.events))
                counts = {"trials": 0}
        if self._waiting_since is not None:
            log.info(
                "the store writes again after %.1f s: %d events written and acked",
                time.monotonic() - self._waiting_since,
                len(batch.events),
            )
            self._waiting_since = None
        self._failures = 0
        self._plan_wait_since = None
        self._announce_dead(batch)
        # Everything delivered on this channel and not yet acked is in this batch.
        batch.last.ack(multiple=True)
        self.stored += counts["trials"]
        observability.WRITE_BATCH_SIZE.observe(len(batch.events))
        log.debug("stored %s from %d deliveries", counts, batch.deliveries)
        batch.clear()
        return flush_s

    def _wait(self, exc: Exception, bound: Bound, waiting: int) -> float:
        """The batch could not be written: say so, every time, with what waits (never a silent
        minute), and how long until the next try; the loop runs meanwhile (heartbeats, and
        deliveries up to the prefetch), and nothing is acked."""
        self._failures += 1
        self.failed_writes += 1
        now = time.monotonic()
        self._waiting_since = self._waiting_since or now
        retry_s = min(0.2 * 2.0**self._failures, 5.0)
        what = (
            f"store unavailable, no answer within {bound.seconds:g} s (TUNEFLEET_STORE_TIMEOUT_S)"
            if bound.ran_out(exc)
            else "store unavailable"
        )
        log.warning(
            "%s (%s); %d events wait unacked, for %.1f s now; trying again in %.1f s",
            what,
            str(exc)[:300],
            waiting,
            now - self._waiting_since,
            retry_s,
        )
        return retry_s

    def _leave_out_unknown_studies(self, batch: _Batch) -> bool:
        """Take out of the batch the failed results and models made of dead letters whose study
        was never registered (`of_known_studies`); their dead letters stay in dead-letters with
        their reasons. A study unknown for less than `UNKNOWN_STUDY_GRACE_S` may be registered
        in another collector's batch: then False, and the batch waits."""
        dead_letters = self.topology.dead_letter_collector_queue
        if all(item.delivery.queue != dead_letters for item in batch.items):
            return True  # the usual batch: results, no dead letters to look into
        in_batch = {
            event.study_id
            for event in batch.events
            if isinstance(event, StudyRegistered | TrialsPlanned)
        }
        known = known_studies(self._store(), in_batch)
        now = time.monotonic()
        waiting = False
        for item in batch.items:
            if item.delivery.queue != dead_letters:
                continue
            dead = [e for e in item.events if isinstance(e, TrialResult | ModelStored)]
            kept, dropped = of_known_studies(dead, known)
            if not dropped:
                continue
            since = [self._unknown_since.setdefault(study_id, now) for study_id in dropped]
            if now - min(since) < UNKNOWN_STUDY_GRACE_S:
                waiting = True
                continue
            what = (
                "refit names study %s, which was never registered: its model (%d) is not"
                if isinstance(dead[0], ModelStored)
                else "trial message names study %s, which was never registered: "
                "its %d trials are not"
            )
            for study_id, n in dropped.items():
                self._unknown_since.pop(study_id, None)
                log.warning(
                    f"a dead {what} recorded, only the dead letter stays (reason: %s)",
                    study_id,
                    n,
                    death_reason(item.delivery.properties.headers)[:300],
                )
            item.events[:] = list(kept)
        if waiting:
            return False
        self._unknown_since.clear()  # what is left became known meanwhile
        batch.events[:] = [event for item in batch.items for event in item.events]
        return True

    def _announce_dead(self, batch: _Batch, items: Sequence[_Item] | None = None) -> None:
        """The failed results written for dead-lettered trials (of `items`, default all the
        batch's), published as the results they are (before the dead letters are acked): the
        planner's adaptive searches and live watchers learn of them like of any result. Stored
        again on the way back: a no-op."""
        assert batch.last is not None
        for item in batch.items if items is None else items:
            if item.delivery.queue != self.topology.dead_letter_collector_queue:
                continue
            for event in item.events:
                if not isinstance(event, TrialResult):
                    continue
                try:
                    body = event.encode()
                except ValueError:
                    # Parameters no JSON can carry (a bad message's infinity): no planner
                    # decided this trial, and its failure is stored.
                    continue
                publish(batch.last.channel, self.topology.events_exchange, event.kind, body)

    def _store_is_away(self, exc: Exception, bound: Bound) -> bool:
        """Whether a failed write was the store's fault, not the data's: decided by a write of
        the store's own, since a store can answer pings while it refuses every write (a full
        disk) and fail on data it would refuse on any day (FerretDB drops the connection on a
        NaN, which looks like an outage). Then events wait unacked until it writes again. A
        store that did not answer in time is away without asking it again: no data makes a
        store silent, and the bound has no time left for a probe."""
        if self._opened is None or bound.ran_out(exc):
            return True  # connecting (and creating the indexes) failed, or no answer
        if isinstance(exc, PlanIncompleteError):
            # The rest of a plan is in another collector's hands: wait for it, for a while.
            now = time.monotonic()
            self._plan_wait_since = self._plan_wait_since or now
            return now - self._plan_wait_since < self.settings.tunefleet_plan_wait_s
        try:
            self._opened.probe_write()
        except Exception:
            return True
        return False

    def _settle_first(self, batch: _Batch, n: int) -> None:
        """Ack the batch's first `n` deliveries with events (written or dead-lettered) and
        everything delivered before them, and take them out of the batch: written one by one
        under the turn's time limit, a large batch goes further at each try instead of
        starting again from its first delivery (and never finishing on a slow store)."""
        if n == 0:
            return
        settled = batch.items[:n]
        self._announce_dead(batch, settled)
        settled[-1].delivery.ack(multiple=True)  # deliveries come, and are kept, in order
        del batch.items[:n]
        batch.events[:] = [event for item in batch.items for event in item.events]
        log.info(
            "a refused batch, written delivery by delivery: %d deliveries settled and acked "
            "before the store did not answer or the time ran out; %d go on at the next try",
            n,
            len(batch.items),
        )

    def _set_aside(self, batch: _Batch, bound: Bound) -> bool:
        """The store refused the batch: write it delivery by delivery and dead-letter the ones
        it refuses, so that one bad event cannot stop the collector. False: the store went
        away meanwhile, or the turn's time ran out; what was settled up to then is acked, and
        the rest of the batch waits for the next try."""
        store = self._store()
        for done, item in enumerate(batch.items):
            try:
                store.write_events(item.events)
            except Exception as exc:
                if self._store_is_away(exc, bound):
                    self._settle_first(batch, done)
                    return False
                reason = f"store refused: {type(exc).__name__}: {exc}"
                delivery = item.delivery
                if delivery.queue == self.topology.dead_letter_collector_queue:
                    # Already a dead letter (its copy stays in dead-letters): do not loop it.
                    log.error("cannot record a dead trial message: %s", reason[:500])
                else:
                    delivery.dead_letter(reason)
        return True
