"""The planner service: study requests in; the plan recorded, then confirmed trial messages out.

For each request (a submission, or a resume's new revision) the planner decides the revision's
trials (`planner.plan`), then publishes, each step confirmed by the broker before the next:

1. `TrialsPlanned` events with every trial of the revision: the collector stores them as the
   study's trial set, which the client and the collector read instead of expanding the spec;
2. `StudyRegistered`, with how many trials there are and what happened to the stored results;
3. the trial messages of the trials that have no result, in chunks;

and acks the request last. A planner that dies on the way gets the request again and decides
the same trials (their ids are deterministic): recording and publishing them twice is harmless.

A study with an adaptive search (TPE, ASHA) is planned as it runs. The planner consumes the
`trial.result` events (its own queue) and, for each result of such a study:

1. writes the result to the store (as the collector does; the same idempotent write), so that
   whatever it decides on is on record before the decision;
2. lets the searches decide (`tunefleet_contract.search.adaptive`: top up to
   `max_in_flight`);
3. writes the decisions to the store itself (not through the collector: a planner restarted a
   moment later must find them), marked with the result they were decided on;
4. publishes their trial messages, and acks the result last.

A restarted planner rebuilds a study's searches from the store when its next result arrives
(`_adaptive`). So does a planner that takes over from another (several planners may run: the
results queue has a single active consumer, the others stand by): what it holds in memory is
trusted only while no other planner has reacted to a result since its own last one (the
store's `planner` turn, taken at each result of a study with an adaptive search or a budget)
and the study's revision is the one it planned. A result redelivered because the planner died
before acking it decides nothing new (the searches already count it), and the trials decided on
it are published again, in case the planner died before publishing them: at worst a trial
computed twice, never one lost.

About 440 lines: the service's two subscriptions and their failure handling side by side, as
the crash-safety argument above runs across both; what is decided is `planner`'s.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import pika
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_contract.messages import (
    PlannedSpec,
    StudyRegistered,
    StudyRequest,
    TrialResult,
    TrialsPlanned,
)
from tunefleet_contract.search import outcome_of
from tunefleet_contract.search.plan import Searches
from tunefleet_contract.spec import SpecError
from tunefleet_runtime import observability
from tunefleet_runtime.broker import BatchChannel, publish, topology_of
from tunefleet_runtime.consumer import ConsumerRuntime, Delivery, RefusalError, Subscription
from tunefleet_runtime.settings import PublisherSettings
from tunefleet_runtime.store import STORE_ERRORS, Bound, Store, bounded, open_store
from tunefleet_runtime.validation import validate_spec

from tunefleet_publisher.budget import Budgets
from tunefleet_publisher.chunks import chunked
from tunefleet_publisher.planner import Plan, decide, plan, planned, trial_messages

__all__ = ["PLANNED_PER_EVENT", "Publisher"]

log = logging.getLogger(__name__)

# Trials per `TrialsPlanned` event: about 150 bytes each, well inside the message size limit.
PLANNED_PER_EVENT = 1000
# How long a request waits before it is tried again while the store does not answer (in the
# broker's loop, `Delivery.requeue_later`: heartbeats go on meanwhile).
_STORE_RETRY_S = 2.0
# First submissions this process remembers (the store remembers all of them).
_REMEMBERED = 10_000
# The role whose turn a planner takes in the store (`Publisher._take_turn`).
PLANNER_TURN = "planner"


@dataclass
class AdaptiveStudy:
    """A study whose adaptive searches this planner drives: their state, where the next
    decision goes in the plan, and which result each decision was made on."""

    request: StudyRequest
    searches: Searches
    next_seq: int
    after: dict[str, str | None] = field(default_factory=dict)
    # Published while rebuilding the searches for the result in hand: not to publish again.
    rebuilt: set[str] = field(default_factory=set)

    @property
    def done(self) -> bool:
        return self.searches.done


def _remember(ids: dict[str, None], study_id: str) -> None:
    """Add to a bounded memory of study ids, forgetting the oldest past `_REMEMBERED`."""
    ids[study_id] = None
    while len(ids) > _REMEMBERED:
        del ids[next(iter(ids))]


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
        # Who this planner is to the others (the store's turns): unique per process.
        self.name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stopping = threading.Event()
        self._batch: BatchChannel | None = None
        self._store: Store | None = None
        # Study ids this process planned a first submission of, oldest first (bounded).
        self._submitted: dict[str, None] = {}
        self.resubmissions = 0
        # The adaptive studies this planner drives, and studies known to have no adaptive
        # search (their results need nothing from it; bounded, oldest first).
        self._adaptive_studies: dict[str, AdaptiveStudy] = {}
        self._fixed_studies: dict[str, None] = {}
        # Results this planner handed back (the store was away): when they come again, they
        # count as redelivered whatever the broker's delivery count says (RabbitMQ 4 no longer
        # counts an explicit requeue).
        self._requeued: set[tuple[str, str]] = set()
        self._budgets = Budgets()  # the budgeted studies' spending (budget)
        self._runtime = ConsumerRuntime(
            settings,
            self._stopping,
            [
                Subscription(self.topology.studies_queue, self._decode, self._handle),
                # The collector dead-letters a bad event (its copy, with the reason); the
                # planner's copy of it is only logged, not dead-lettered a second time.
                Subscription(
                    self.topology.planner_queue,
                    TrialResult.decode,
                    self._on_result,
                    dead_letters=False,
                ),
            ],
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

    def _bounded(self) -> AbstractContextManager[Bound]:
        """One time limit on all the store calls made for one message: they run on the broker
        connection's thread, which sends no heartbeat until the handler returns."""
        return bounded(self.settings.tunefleet_store_timeout_s)

    def _stored(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    def _plan(self, delivery: Delivery[StudyRequest]) -> Plan | None:
        """The request's plan; None for a study submitted before (see `_resubmitted`)."""
        request = delivery.message
        if request.revision == 0:
            if self._resubmitted(delivery):
                return None
            return plan(request, {}, 0)
        # A resume: what the study has stored decides what runs again.
        store = self._stored()
        study = store.study(request.study_id)
        current = study.revision if study is not None else request.revision - 1
        recorded = store.plan(request.study_id) if request.spec.adaptive else []
        return plan(request, store.result_states(request.study_id), current, recorded)

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

    def _record(self, decided: Plan) -> list[TrialsPlanned]:
        """The plan as `TrialsPlanned` events; for a study with an adaptive search, stored now
        as well, not only through the collector: the planner's next decisions, or a restarted
        planner's, go on from this record."""
        request = decided.request
        planned = [
            TrialsPlanned(
                study_id=request.study_id, revision=request.revision, first=first, trials=chunk
            )
            for first, chunk in _positioned(chunked(iter(decided.trials), PLANNED_PER_EVENT))
        ]
        if decided.adaptive:
            self._stored().write_events(planned)
        return planned

    def _handle(self, delivery: Delivery[StudyRequest]) -> None:
        started = time.monotonic()
        request = delivery.message
        self._budgets.forget(request.study_id)  # a new revision may bring a new budget
        try:
            with self._bounded() as bound:
                decided = self._plan(delivery)
                recorded = self._record(decided) if decided is not None else []
        except STORE_ERRORS as exc:
            # Not the request's fault: it waits (unacked, then requeued) until the store answers.
            log.warning(
                "%s (%s); study %s waits, tried again in %g s",
                _unavailable(bound, exc),
                exc,
                request.study_id,
                _STORE_RETRY_S,
            )
            delivery.requeue_later(_STORE_RETRY_S)
            return
        if decided is None:
            log.info(
                "study %s was submitted before: nothing published (a resume runs what is missing)",
                request.study_id,
            )
            self.resubmissions += 1
            delivery.ack()
            return
        assert self._batch is not None  # set on connect, before any delivery
        # 1. The plan, recorded before anything runs by it.
        size = self.settings.tunefleet_publish_batch
        events = [(event.kind, event.encode()) for event in recorded]
        for start in range(0, len(events), size):
            self._batch.publish(self.topology.events_exchange, events[start : start + size])
        # 2. The study: the collector then knows the total before any result arrives.
        registered = StudyRegistered(
            study_id=request.study_id,
            spec=request.spec,
            n_trials=decided.n_trials,
            planned=len(decided.trials) if decided.adaptive else None,
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
        if decided.adaptive and delivery.attempt == 1:
            # Fresh: no result of this revision can exist yet. A request delivered again may
            # have results already (reacted to meanwhile): its searches are rebuilt from the
            # store at its next result instead.
            self._adaptive_studies[request.study_id] = AdaptiveStudy(
                request, decided.searches, next_seq=len(decided.trials)
            )
        else:
            self._adaptive_studies.pop(request.study_id, None)
        _remember(self._submitted, request.study_id)
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

    # -- adaptive searches: results in, decisions out ----------------------------------------

    def _on_result(self, delivery: Delivery[TrialResult]) -> None:
        result = delivery.message
        try:
            with self._bounded() as bound:
                # What this planner holds in memory of the study depends on its results: it is
                # trusted only while no other planner has reacted to results since.
                if not (
                    result.study_id in self._fixed_studies
                    and self._budgets.unbudgeted(result.study_id)
                ):
                    self._take_turn()
                if self._budget_spent(result):
                    # Nothing more is decided (a resume with a larger budget rebuilds it).
                    self._adaptive_studies.pop(result.study_id, None)
                else:
                    study = self._adaptive(result.study_id, result.trial_id)
                    if study is not None:
                        self._react(study, delivery)
        except _NotRegisteredError:
            # Its registration is still on its way to the store (the collector is behind).
            delivery.requeue_later(_STORE_RETRY_S)
            return
        except BaseException as exc:
            # Decisions made in memory may not be on record: the searches are rebuilt from the
            # store when the result comes again, and decide those again.
            self._adaptive_studies.pop(result.study_id, None)
            if not isinstance(exc, STORE_ERRORS):
                raise
            log.warning(
                "%s (%s); a result of %s waits, tried again in %g s",
                _unavailable(bound, exc),
                exc,
                result.study_id,
                _STORE_RETRY_S,
            )
            self._requeued.add((result.study_id, result.trial_id))
            delivery.requeue_later(_STORE_RETRY_S)
            return
        self._requeued.discard((result.study_id, result.trial_id))
        delivery.ack()

    def _take_turn(self) -> None:
        """Take the planner's turn in the store; if another planner had it, it reacted to
        results since this one last did (this one stood by, or lost its connection for a while):
        the searches and budget counts held in memory may lack those results and decisions, so
        they are dropped, and each study's are rebuilt from the store at its next result."""
        before = self._stored().take_turn(PLANNER_TURN, self.name)
        if before not in (None, self.name):
            log.info(
                "planner %s reacted to results since this one last did: the searches of %d "
                "studies and the budget counts are rebuilt from the store",
                before,
                len(self._adaptive_studies),
            )
            self._adaptive_studies.clear()
            self._budgets.forget_all()

    def _budget_spent(self, result: TrialResult) -> bool:
        """Count the result against its study's budget; once it is spent, stop the study (a
        cancel by the planner, published here: workers skip what is queued, the collector
        records it). Whether the study's budget is spent."""
        if not self._budgets.current(result):
            store = self._stored()
            record = store.study(result.study_id)
            stored = (
                store.results(result.study_id, record.revision)
                if record is not None and record.spec.budget is not None
                else None
            )
            self._budgets.load(record, stored)
        stop = self._budgets.spent_by(result)
        if stop is not None:
            assert self._batch is not None  # set on connect, before any delivery
            self._batch.publish(self.topology.events_exchange, [(stop.kind, stop.encode())])
            log.info("study %s stopped: %s", result.study_id, stop.reason)
        return self._budgets.stopped(result.study_id)

    def _adaptive(self, study_id: str, on: str) -> AdaptiveStudy | None:
        """The study's adaptive searches; rebuilt from the store when this planner does not
        drive them yet (it restarted, it took over from another planner, or another planner
        planned the study or its current revision), on the result of trial `on`. None: the
        study has no adaptive search, or is cancelled."""
        if study_id in self._fixed_studies:
            return None
        store = self._stored()
        record = store.study(study_id)
        known = self._adaptive_studies.get(study_id)
        if record is not None and record.cancelled:
            # Nothing more is decided; a resume rebuilds the searches from the store.
            self._adaptive_studies.pop(study_id, None)
            return None
        # A later revision was planned elsewhere (a resume another planner took): rebuilt. An
        # earlier one, or none: the registration of what this planner planned is on its way.
        if known is not None and (record is None or record.revision <= known.request.revision):
            return known
        if record is None:
            if store.plan(study_id):
                raise _NotRegisteredError(study_id)  # planned, its registration on the way
            _remember(self._fixed_studies, study_id)
            return None
        if not record.spec.adaptive:
            _remember(self._fixed_studies, study_id)
            return None
        request = StudyRequest(
            study_id=study_id,
            spec=record.spec,
            submitted_at=record.submitted_at,
            revision=record.revision,
        )
        recorded = store.plan(study_id)
        trials, searches = decide(request, store.result_states(study_id), recorded)
        known_ids = {p.trial_id for p in recorded}
        study = AdaptiveStudy(
            request, searches, next_seq=len(recorded), after={p.trial_id: p.after for p in recorded}
        )
        # What it decides now (the planner that died had recorded a result, not yet what it
        # decided on it) is recorded and published like any decision, as decided on `on`.
        new = [t for t in trials if t.trial_id not in known_ids]
        self._decided(study, new, on)
        study.rebuilt = {t.trial_id for t in new}
        self._adaptive_studies[study_id] = study
        log.info(
            "study %s: adaptive searches rebuilt from %d stored decisions", study_id, len(recorded)
        )
        return study

    def _react(self, study: AdaptiveStudy, delivery: Delivery[TrialResult]) -> None:
        result = delivery.message
        store = self._stored()
        waiting = study.searches.waiting()
        if any(t.trial_id == result.trial_id for t in waiting):
            store.write_events([result])
        again: list[PlannedSpec] = []
        if delivery.attempt > 1 or (result.study_id, result.trial_id) in self._requeued:
            # Redelivered: this planner (or one before it) may have died after recording what
            # it decided on this result, before publishing it.
            again = [
                planned(t)
                for t in waiting
                if study.after.get(t.trial_id) == result.trial_id
                and t.trial_id not in study.rebuilt
            ]
        study.rebuilt = set()
        decided = study.searches.react(result.trial_id, outcome_of(result.status, result.score))
        self._decided(study, [planned(t) for t in decided], result.trial_id, again)
        if study.done:
            del self._adaptive_studies[result.study_id]

    def _decided(
        self,
        study: AdaptiveStudy,
        new: list[PlannedSpec],
        after: str | None,
        again: list[PlannedSpec] | None = None,
    ) -> None:
        """Record `new` decisions (made on the result of trial `after`), then publish them,
        with `again`: decisions recorded before whose publishing is in doubt."""
        if new:
            self._stored().write_events(
                [
                    TrialsPlanned(
                        study_id=study.request.study_id,
                        revision=study.request.revision,
                        first=study.next_seq,
                        trials=new,
                        after=after,
                    )
                ]
            )
            study.next_seq += len(new)
            study.after.update((t.trial_id, after) for t in new)
        publish = [*new, *(again or [])]
        if not publish:
            return
        assert self._batch is not None
        messages = trial_messages(study.request, publish)
        self._batch.publish(
            self.topology.trials_exchange, [("trial", message.encode()) for message in messages]
        )
        observability.TRIALS_PUBLISHED.inc(len(publish))
        log.info(
            "study %s: %d trials decided%s",
            study.request.study_id,
            len(new),
            f", {len(again)} published again" if again else "",
        )


def _unavailable(bound: Bound, exc: BaseException) -> str:
    if bound.ran_out(exc):
        return (
            f"store unavailable, no answer within {bound.seconds:g} s (TUNEFLEET_STORE_TIMEOUT_S)"
        )
    return "store unavailable"


class _NotRegisteredError(Exception):
    """A result of a study whose registration the store does not have yet."""


def _positioned(
    chunks: Iterable[list[PlannedSpec]],
) -> Iterator[tuple[int, list[PlannedSpec]]]:
    first = 0
    for chunk in chunks:
        yield first, chunk
        first += len(chunk)
