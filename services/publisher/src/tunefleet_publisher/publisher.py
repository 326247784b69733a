"""The planner service: study requests in; the plan recorded, then confirmed trial messages out.

For each request (a submission, or a resume's new revision) the planner decides the revision's
trials (`planner.plan`), then publishes, each step confirmed by the broker before the next:

1. `TrialsPlanned` events with every trial of the revision: the collector stores them as the
   study's trial set, which the client and the collector read instead of expanding the spec;
2. `StudyRegistered`, with how many trials there are and what happened to the stored results;
3. the trial messages of the trials that have no result, in chunks;

and acks the request last. A planner that dies on the way gets the request again and decides
the same trials (their ids are deterministic): recording and publishing them twice is harmless.
"""

from __future__ import annotations

import logging
import threading
import time

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pymongo.errors import PyMongoError
from tunefleet_contract.messages import StudyRegistered, StudyRequest, TrialsPlanned
from tunefleet_contract.spec import SpecError
from tunefleet_runtime import observability
from tunefleet_runtime.broker import BatchChannel, publish, topology_of
from tunefleet_runtime.consumer import ConsumerRuntime, Delivery, RefusalError, Subscription
from tunefleet_runtime.settings import PublisherSettings
from tunefleet_runtime.store import MongoStore, Store
from tunefleet_runtime.validation import validate_spec

from tunefleet_publisher.planner import Plan, plan
from tunefleet_publisher.trials import chunked

__all__ = ["PLANNED_PER_EVENT", "Publisher"]

log = logging.getLogger(__name__)

# Trials per `TrialsPlanned` event: about 150 bytes each, well inside the message size limit.
PLANNED_PER_EVENT = 1000
# How long a request waits before it is tried again while the store does not answer.
_STORE_RETRY_S = 2.0


class Publisher:
    def __init__(self, settings: PublisherSettings) -> None:
        self.settings = settings
        self.topology = topology_of(settings)
        self._stopping = threading.Event()
        self._batch: BatchChannel | None = None
        self._store: Store | None = None
        self._runtime = ConsumerRuntime(
            settings,
            self._stopping,
            [Subscription(self.topology.studies_queue, self._decode, self._handle)],
            prefetch=1,
            on_connect=self._connected,
        )

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        self._runtime.run()

    def _connected(self, connection: pika.BlockingConnection, _channel: BlockingChannel) -> None:
        self._batch = BatchChannel(connection)

    def _decode(self, body: bytes) -> StudyRequest:
        request = StudyRequest.decode(body)
        # Decoding checked the structure; the full check (catalogue, scorer) is the planner's,
        # once: the request may not come from a client that ran it.
        try:
            validate_spec(request.spec)
        except SpecError as exc:
            raise RefusalError(str(exc)) from None
        n = request.spec.n_trials()
        if n > self.settings.tunefleet_max_trials:
            raise RefusalError(
                f"study has {n:,} trials, over this publisher's limit of "
                f"{self.settings.tunefleet_max_trials:,} (TUNEFLEET_MAX_TRIALS)"
            )
        return request

    def _plan(self, request: StudyRequest) -> Plan:
        if request.revision == 0:
            return plan(request, {}, 0)
        # A resume: what the study has stored decides what runs again.
        if self._store is None:
            self._store = MongoStore.connect(self.settings)
        study = self._store.study(request.study_id)
        current = study.revision if study is not None else request.revision - 1
        return plan(request, self._store.result_states(request.study_id), current)

    def _handle(self, delivery: Delivery[StudyRequest]) -> None:
        started = time.monotonic()
        request = delivery.message
        try:
            decided = self._plan(request)
        except PyMongoError as exc:
            # Not the request's fault: it waits (unacked, then requeued) until the store answers.
            log.warning("store unavailable (%s); study %s waits", exc, request.study_id)
            self._stopping.wait(_STORE_RETRY_S)
            delivery.requeue()
            return
        assert self._batch is not None  # set on connect, before any delivery
        # 1. The plan, recorded before anything runs by it.
        first = 0
        size = self.settings.tunefleet_publish_batch
        events = []
        for chunk in chunked(iter(decided.trials), PLANNED_PER_EVENT):
            event = TrialsPlanned(
                study_id=request.study_id, revision=request.revision, first=first, trials=chunk
            )
            events.append((event.kind, event.encode()))
            first += len(chunk)
        for start in range(0, len(events), size):
            self._batch.publish(self.topology.events_exchange, events[start : start + size])
        # 2. The study: the collector then knows the total before any result arrives.
        registered = StudyRegistered(
            study_id=request.study_id,
            spec=request.spec,
            n_trials=len(decided.trials),
            submitted_at=request.submitted_at,
            published_at=time.time(),
            revision=request.revision,
            rerun_failed=request.rerun_failed,
            published=len(decided.publish),
            kept=decided.kept,
            kept_failed=decided.kept_failed,
            superseded=decided.superseded,
        )
        publish(
            delivery.channel, self.topology.events_exchange, registered.kind, registered.encode()
        )
        # 3. The trials: one broker round trip per TUNEFLEET_PUBLISH_BATCH messages.
        messages = decided.messages()
        for start in range(0, len(messages), size):
            part = messages[start : start + size]
            self._batch.publish(
                self.topology.trials_exchange, [("trial", message.encode()) for message in part]
            )
            observability.TRIALS_PUBLISHED.inc(sum(len(message.trials) for message in part))
        # Only now: a crash before this ack plans and publishes the same trial ids again.
        delivery.ack()
        log.info(
            "published study %s revision %d: %d trials planned, %d published in %d messages "
            "in %.2f s",
            request.study_id,
            request.revision,
            len(decided.trials),
            len(decided.publish),
            len(messages),
            time.monotonic() - started,
        )
