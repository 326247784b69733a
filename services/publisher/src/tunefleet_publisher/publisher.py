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
# First submissions this process remembers (the store remembers all of them).
_REMEMBERED = 10_000


def _check_study_id(request: StudyRequest) -> None:
    """A request names its study by the spec's own id (name and hash; a resume keeps the id
    of the study it resumes, whose spec it may fix under the same name): a request from
    elsewhere must not register a spec under another study's id."""
    if request.revision == 0 and request.study_id != request.spec.study_id():
        raise RefusalError(
            f"study_id {request.study_id!r} is not this spec's id {request.spec.study_id()!r}"
        )
    if not request.study_id.startswith(f"{request.spec.name}-"):
        raise RefusalError(
            f"study_id {request.study_id!r} does not belong to a study named {request.spec.name!r}"
        )


class Publisher:
    def __init__(self, settings: PublisherSettings) -> None:
        self.settings = settings
        self.topology = topology_of(settings)
        self._stopping = threading.Event()
        self._batch: BatchChannel | None = None
        self._store: Store | None = None
        # Study ids this process planned a first submission of, oldest first (bounded).
        self._submitted: dict[str, None] = {}
        self.resubmissions = 0
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
        _check_study_id(request)
        n = request.spec.n_trials()
        if n > self.settings.tunefleet_max_trials:
            raise RefusalError(
                f"study has {n:,} trials, over this publisher's limit of "
                f"{self.settings.tunefleet_max_trials:,} (TUNEFLEET_MAX_TRIALS)"
            )
        return request

    def _stored(self) -> Store:
        if self._store is None:
            self._store = MongoStore.connect(self.settings)
        return self._store

    def _plan(self, delivery: Delivery[StudyRequest]) -> Plan | None:
        """The request's plan; None for a study submitted before (see `_resubmitted`)."""
        request = delivery.message
        if request.revision == 0:
            if self._resubmitted(delivery):
                return None
            return plan(request, {}, 0)
        # A resume: what the study has stored decides what runs again.
        study = self._stored().study(request.study_id)
        current = study.revision if study is not None else request.revision - 1
        return plan(request, self._stored().result_states(request.study_id), current)

    def _resubmitted(self, delivery: Delivery[StudyRequest]) -> bool:
        """Whether a first submission's request names a study that was submitted before: its
        trials are planned and published already (queued, running or stored), and publishing
        them again would compute each one twice. What is missing runs through a resume.

        A redelivered request is planned and published again: the planner may have died after
        recording the study and before publishing all of its trials (and a request requeued
        while the store was away is redelivered too; a resubmission in that window still
        publishes, the one race left besides two planners taking identical requests at once).
        The store is the record across planners and restarts; this planner's own memory
        covers the moment before the collector has stored its last registration."""
        study_id = delivery.message.study_id
        if delivery.attempt > 1:
            return False
        if study_id in self._submitted:
            return True
        return self._stored().study(study_id) is not None

    def _handle(self, delivery: Delivery[StudyRequest]) -> None:
        started = time.monotonic()
        request = delivery.message
        try:
            decided = self._plan(delivery)
        except PyMongoError as exc:
            # Not the request's fault: it waits (unacked, then requeued) until the store answers.
            log.warning("store unavailable (%s); study %s waits", exc, request.study_id)
            self._stopping.wait(_STORE_RETRY_S)
            delivery.requeue()
            return
        if decided is None:
            log.info(
                "study %s was submitted before: nothing published (a resume runs what is missing)",
                request.study_id,
            )
            self.resubmissions += 1
            delivery.ack()
            return
        self._submitted[request.study_id] = None
        while len(self._submitted) > _REMEMBERED:
            del self._submitted[next(iter(self._submitted))]
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
