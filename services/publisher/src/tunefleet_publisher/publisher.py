"""Study requests in, confirmed trial messages out."""

from __future__ import annotations

import logging
import threading
import time

import pika
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_contract.messages import StudyRegistered, StudyRequest, TrialMessage
from tunefleet_contract.spec import SpecError
from tunefleet_runtime import observability
from tunefleet_runtime.broker import BatchChannel, publish, topology_of
from tunefleet_runtime.consumer import ConsumerRuntime, Delivery, RefusalError, Subscription
from tunefleet_runtime.settings import PublisherSettings
from tunefleet_runtime.trials import chunked, expand
from tunefleet_runtime.validation import resolved_task, validate_spec

__all__ = ["Publisher", "expand_request"]

log = logging.getLogger(__name__)


def expand_request(request: StudyRequest) -> tuple[int, list[TrialMessage]]:
    """The trial messages of a study request; also the study's full size."""
    spec = request.spec
    wanted = set(request.only_trials) if request.only_trials is not None else None
    total = 0
    messages: list[TrialMessage] = []
    trials = []
    for trial in expand(spec, request.study_id):
        total += 1
        if wanted is None or trial.trial_id in wanted:
            trials.append(trial)
    task = resolved_task(spec)
    for chunk in chunked(iter(trials), spec.chunk_size):
        messages.append(
            TrialMessage(
                study_id=request.study_id,
                dataset=spec.dataset,
                task=task,
                metric=spec.resolved_metric(task) if task else spec.metric,
                folds=spec.cv.folds,
                seed=spec.cv.seed,
                trials=chunk,
                revision=request.revision,
            )
        )
    return total, messages


class Publisher:
    def __init__(self, settings: PublisherSettings) -> None:
        self.settings = settings
        self.topology = topology_of(settings)
        self._stopping = threading.Event()
        self._batch: BatchChannel | None = None
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

    def _handle(self, delivery: Delivery[StudyRequest]) -> None:
        started = time.monotonic()
        request = delivery.message
        total, messages = expand_request(request)
        # The study first: the collector then knows the total before any result arrives.
        publish(
            delivery.channel,
            self.topology.events_exchange,
            "study.registered",
            StudyRegistered(
                study_id=request.study_id,
                spec=request.spec,
                n_trials=total,
                submitted_at=request.submitted_at,
                published_at=time.time(),
                revision=request.revision,
                rerun_failed=request.rerun_failed,
            ).encode(),
        )
        assert self._batch is not None  # set on connect, before any delivery
        # One broker round trip per TUNEFLEET_PUBLISH_BATCH messages instead of one per message.
        size = self.settings.tunefleet_publish_batch
        for first in range(0, len(messages), size):
            part = messages[first : first + size]
            self._batch.publish(
                self.topology.trials_exchange, [("trial", message.encode()) for message in part]
            )
            observability.TRIALS_PUBLISHED.inc(sum(len(message.trials) for message in part))
        # Only now: a crash before this ack republishes the same trial ids, which is harmless.
        delivery.ack()
        log.info(
            "published study %s: %d trials in %d messages in %.2f s",
            request.study_id,
            sum(len(m.trials) for m in messages),
            len(messages),
            time.monotonic() - started,
        )
