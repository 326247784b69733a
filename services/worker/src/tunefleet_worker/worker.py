"""The worker: one trial message at a time, trained in a thread while pika keeps heartbeats.

pika's BlockingConnection only talks to the broker while its loop runs (the consumer runtime's),
so training happens in a daemon thread and everything it wants done on the connection (publish a
result, ack) is handed back with `Delivery.threadsafe`. The message is acked only after every
result it carries was confirmed by the broker: a crash at any moment means redelivery, never a
lost trial.

Each finished fold of a long trial is published as a fold checkpoint (`FoldCheckpoint`), which
the collector stores; a later delivery of the trial reads them and trains only the folds that
have none (`training.run_folds`). Told to stop (SIGTERM) with a trial in hand, the worker waits
the grace period for it, then hands the message back (`_hand_back`): what is left of it goes to
the end of the queue as a new message that counts one more preemption, and this delivery is
acked, so that preemptions never count against the delivery limit. With `checkpoint: rounds`
the fold in training does not wait: the stop cuts it after its current round, its booster is
stored as a blob and announced (`RoundCheckpoint`), and the trial is handed back at once; the
next delivery continues that fold from the round it was cut at (`training.fit_fold_rounds`).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_contract.families import families
from tunefleet_contract.messages import (
    FoldCheckpoint,
    ModelRefit,
    ModelStored,
    RoundCheckpoint,
    TrialMessage,
    TrialResult,
    TrialSpec,
    TrialsSettled,
    TrialsStarted,
    decode_work,
)
from tunefleet_contract.params import LIBRARIES, THREAD_PARAM, ParamError, check_param
from tunefleet_contract.spec import default_metric
from tunefleet_runtime import observability
from tunefleet_runtime.blobs import BlobError, BlobStore
from tunefleet_runtime.broker import (
    CONNECTION_ERRORS,
    BatchChannel,
    publish,
    topology_of,
)
from tunefleet_runtime.consumer import ConsumerRuntime, Delivery, RefusalError, Subscription
from tunefleet_runtime.records import RoundRecord
from tunefleet_runtime.settings import StoreSettings, WorkerSettings
from tunefleet_runtime.store import STORE_ERRORS, Store, bounded, open_blobs, open_store

from tunefleet_worker.checkpoints import (
    fold_checkpoint,
    resumed_folds,
    resumed_rounds,
    round_records,
)
from tunefleet_worker.control import StudyControl
from tunefleet_worker.datacache import DataCache
from tunefleet_worker.datasets import DatasetError, load_dataset
from tunefleet_worker.earlystop import run_stopped
from tunefleet_worker.families import run_family
from tunefleet_worker.ledger import carried_seconds, charged, cores_for
from tunefleet_worker.refit import refit, save_native
from tunefleet_worker.training import (
    FoldDone,
    Resumed,
    RoundsResumed,
    RoundStoppedError,
    TrialContext,
)

__all__ = ["Worker", "blob_store", "check_message"]

# What the trials queue carries: trials, and refits (one slot per worker for both).
Work = TrialMessage | ModelRefit
# What a job publishes on the events exchange, in order, in batches.
Outgoing = TrialResult | ModelStored | FoldCheckpoint | RoundCheckpoint

log = logging.getLogger(__name__)


def check_message(message: Work, max_threads: int) -> None:
    """Refuse (`RefusalError`) what the planner would have refused: the message may not come from
    it. Also what this worker will not run: more threads than its limit."""
    trials = message.trials if isinstance(message, TrialMessage) else [message]
    for trial in trials:
        if trial.library not in LIBRARIES:
            raise RefusalError(
                f"trial {trial.trial_id}: unknown library {trial.library!r}; "
                f"this worker runs {', '.join(LIBRARIES)}"
            )
        for name, value in trial.params.items():
            try:
                check_param(trial.library, name, value)
            except ParamError as exc:
                raise RefusalError(f"trial {trial.trial_id}: {exc}") from None
        threads = trial.params.get(THREAD_PARAM[trial.library])
        if isinstance(threads, int) and threads > max_threads:
            raise RefusalError(
                f"trial {trial.trial_id}: {THREAD_PARAM[trial.library]}={threads} is over this "
                f"worker's limit of {max_threads} threads"
            )


def _carried(job: _Job, left: Sequence[TrialSpec]) -> list[RoundCheckpoint]:
    """The round checkpoints a hand-back of `left` carries: those its message carried, and the
    fold this delivery cut in their place (the next delivery need not wait for the collector
    to have stored it: the message and its record are published together, the record first)."""
    message = job.delivery.message
    assert isinstance(message, TrialMessage)
    ids = {t.trial_id for t in left}
    cut = job.cut
    kept = [
        c
        for c in message.rounds_from
        if c.trial_id in ids and (cut is None or (c.trial_id, c.fold) != (cut.trial_id, cut.fold))
    ]
    return kept + ([cut] if cut is not None and cut.trial_id in ids else [])


def blob_store(settings: WorkerSettings) -> Callable[[], BlobStore]:
    """How this worker reaches the blobs (uploaded datasets, models), connected on first use."""
    url = str(settings.mongodb_url)
    return lambda: open_blobs(
        url,
        settings.mongodb_database,
        settings.tunefleet_max_dataset_bytes,
        timeout_s=settings.tunefleet_store_timeout_s,
    )


@dataclass
class _Job:
    """One delivery in hand."""

    delivery: Delivery[Work]
    batch: BatchChannel
    abandon: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    # Results and fold checkpoints encoded by the training thread, waiting for the connection
    # thread's next commit.
    results: deque[tuple[Outgoing, bytes]] = field(default_factory=deque)
    flush_pending: threading.Event = field(default_factory=threading.Event)
    published: list[str] = field(default_factory=list)  # trial ids with confirmed results
    # The broker closed the channel the delivery came on (consumer_timeout) while it ran: it
    # cannot be acked, and the broker will deliver it again.
    orphaned: bool = False
    started: float = field(default_factory=time.monotonic)
    # The fold cut on a stop and stored (`checkpoint: rounds`): the hand-back carries it.
    cut: RoundCheckpoint | None = None


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.topology = topology_of(settings)
        self.name = settings.tunefleet_worker_name or f"{socket.gethostname()}-{os.getpid()}"
        self._stopping = threading.Event()
        self._job: _Job | None = None
        self._batch: BatchChannel | None = None
        self.trials_done = 0
        self.handed_back = 0  # messages handed back on a stop (preemptions)
        self.folds_resumed = 0  # folds taken from checkpoints instead of trained again
        self.rounds_saved = 0  # folds cut on a stop and stored (round checkpoints)
        self.rounds_resumed = 0  # folds continued from a round checkpoint
        self.control = StudyControl(on_settled=self._on_settled)
        self.trials_skipped = 0
        self.data = DataCache(
            settings.tunefleet_cache_dir,
            settings.tunefleet_cache_bytes,
            blob_store(settings) if settings.mongodb_url is not None else None,
        )
        # Read once per trial with the median rule (the finished trials' curves), and once per
        # delivery after the first (the fold checkpoints of its trials).
        self._store: Store | None = None
        self._runtime = ConsumerRuntime(
            settings,
            self._stopping,
            [Subscription(self.topology.trials_queue, self._decode, self._on_message)],
            prefetch=1,
            on_connect=self._connected,
            on_stop=self._drain,
            on_lost=self._connection_lost,
        )

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a delivery is in hand (what the pod's deletion cost follows, podcost)."""
        return self._job is not None

    def stop(self) -> None:
        """Stop taking trials; the one in hand gets the grace period (see `_drain`)."""
        self._stopping.set()

    def run(self) -> None:
        self._runtime.run()
        log.info("worker %s stopped after %d trials", self.name, self.trials_done)

    def _connected(self, connection: pika.BlockingConnection, channel: BlockingChannel) -> None:
        self._batch = BatchChannel(connection)
        channel._impl.add_on_close_callback(self._consumer_closed)
        # Catch up on cancels before taking trials (best effort: channels are not ordered).
        self.control.follow(connection, self.topology)
        connection.process_data_events(time_limit=0.2)
        log.info("worker %s consuming %s", self.name, self.topology.trials_queue)

    def _drain(self, connection: pika.BlockingConnection) -> None:
        job = self._job
        if job is None:
            return
        deadline = time.monotonic() + self.settings.tunefleet_grace_period_s
        while not job.finished.is_set() and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        if job.finished.is_set() or self._hand_back(job):
            return
        log.info("abandoning the trials in hand after the grace period; the broker redelivers")
        self._abandon_job()

    def _hand_back(self, job: _Job) -> bool:
        """On a stop, after the grace period: publish what the job finished (fold checkpoints,
        results), then put what is left of its message back at the end of the queue as a new
        message with one more preemption (`Delivery.hand_back`, confirmed), then ack this
        delivery. False where that cannot be done (the broker has the delivery back already,
        or the connection failed meanwhile): then the broker redelivers it, as before.

        A death at any point loses nothing: before the new message is confirmed, the delivery
        is still unacked and comes again; between that and the ack, both come (a duplicate:
        results are stored once, and the second copy resumes from the same checkpoints)."""
        if job.orphaned:
            return False
        job.abandon.set()  # the training thread publishes nothing more from here
        message = job.delivery.message
        try:
            self._publish_queued(job)
            body: bytes | None = job.delivery.body
            published = set(job.published)
            if isinstance(message, TrialMessage):
                left = [t for t in message.trials if t.trial_id not in published]
                if self.control.skips(message.study_id, message.revision):
                    left = []  # cancelled or superseded meanwhile: dropped, as a skip drops it
                update: dict[str, Any] = {"trials": left, "rounds_from": _carried(job, left)}
                body = message.model_copy(update=update).encode() if left else None
            elif message.trial_id in published:
                body = None  # the refit's model is stored and announced
            if body is not None:
                job.delivery.hand_back(body)
            job.delivery.ack()
        except (*CONNECTION_ERRORS, pika.exceptions.UnroutableError, pika.exceptions.NackError):
            log.warning("cannot hand the message in hand back; the broker redelivers it")
            return False
        job.finished.set()
        if self._job is job:
            self._job = None
        self.handed_back += 1
        observability.HANDED_BACK.inc()
        log.info(
            "handed back a message of study %s after %.0f s (preemption %d): %s",
            message.study_id,
            time.monotonic() - job.started,
            job.delivery.preemptions + 1,
            "nothing was left of it" if body is None else "the rest goes to the next worker",
        )
        return True

    def _consumer_closed(self, _channel: object, reason: Exception) -> None:
        """The broker closed the consuming channel, the connection staying up: with a trial
        past `consumer_timeout` in hand, it has taken the delivery back to deliver it again.
        Training goes on; its results are published and announced as settled (so that the
        redelivery is skipped, by whichever worker gets it), then consuming resumes on a new
        connection. Without a job, consuming resumes at once.

        A channel closed any other way went with its connection: by this worker (a SIGTERM's
        shutdown, a restart: `ChannelClosedByClient`, "Normal shutdown"), which is no news, or
        lost, which `_connection_lost` reports."""
        if not isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            log.debug("the trials channel closed with its connection (%r)", reason)
            return
        job = self._job
        if job is None or job.finished.is_set():
            log.warning("the broker closed the trials channel (%s); consuming again", reason)
            self._runtime.restart()
            return
        job.orphaned = True
        log.warning(
            "the broker closed the trials channel after %.0f s on a message of study %s (%s): "
            "its trials go on and, while the connection lasts, their results are kept and the "
            "redelivery skipped; set RabbitMQ's consumer_timeout above the longest chunk "
            "(docs/reliability.md)",
            time.monotonic() - job.started,
            job.delivery.message.study_id,
            reason,
        )

    def _connection_lost(self) -> None:
        """The broker connection is gone: what was in hand cannot be acked or published on it,
        so it is abandoned, and the broker delivers it again (to this worker once it has
        reconnected, or to another)."""
        job = self._job
        if job is not None and not job.finished.is_set():
            message = job.delivery.message
            what = (
                f"its {len(message.trials) - len(job.published)} trials without a confirmed "
                "result are"
                if isinstance(message, TrialMessage)
                else "the refit is"
            )
            log.warning(
                "lost the broker connection after %.0f s on a message of study %s: %s "
                "abandoned%s, nothing more of it is kept; the broker delivers the message again",
                time.monotonic() - job.started,
                message.study_id,
                what,
                " after all" if job.orphaned else "",
            )
        self._abandon_job()

    def _on_settled(self, event: TrialsSettled) -> None:
        """Another worker's results settled the trials in hand (both got the delivery, around
        a consumer_timeout): stop computing them, and let the delivery go."""
        job = self._job
        if job is None or job.finished.is_set():
            return
        message = job.delivery.message
        if not isinstance(message, TrialMessage):
            return  # a refit settles nothing but itself
        if (message.study_id, message.revision) != (event.study_id, event.revision):
            return
        if not {t.trial_id for t in message.trials} <= set(event.trial_ids):
            return  # the others run; the loop in `_run` skips these
        log.info("the trials in hand were settled by %s; stopping", event.worker or "a worker")
        self._abandon_job()
        job.finished.set()
        self.trials_skipped += len(message.trials)
        if job.orphaned:
            self._runtime.restart()
        else:
            job.delivery.ack()

    def _abandon_job(self) -> None:
        if self._job is not None:
            self._job.abandon.set()
            self._job = None

    # -- on the connection's thread --------------------------------------------------------

    def _decode(self, body: bytes) -> Work:
        message = decode_work(body)
        check_message(message, self.settings.tunefleet_max_worker_threads)
        return message

    def _settled(self, message: TrialMessage, trial_id: str) -> bool:
        return self.control.settled(message.study_id, message.revision, trial_id)

    def _on_message(self, delivery: Delivery[Work]) -> None:
        message = delivery.message
        assert self._batch is not None  # set on connect, before any delivery
        if isinstance(message, ModelRefit):  # a refit of a cancelled study still runs
            self._job = _Job(delivery, self._batch)
            threading.Thread(target=self._train, args=(self._job,), daemon=True).start()
            return
        if self.control.skips(message.study_id, message.revision):
            # Cancelled, or superseded by a resume: drop without a result (a resume runs or
            # has already republished these trials).
            delivery.ack()
            self.trials_skipped += len(message.trials)
            return
        if all(self._settled(message, t.trial_id) for t in message.trials):
            # Computed and stored already; the broker took the delivery back after
            # consumer_timeout while it ran (see `_consumer_closed`).
            log.info("skipping a redelivered message of study %s: settled", message.study_id)
            delivery.ack()
            self.trials_skipped += len(message.trials)
            return
        job = _Job(delivery, self._batch)
        self._job = job
        publish(
            delivery.channel,
            self.topology.events_exchange,
            "trial.started",
            TrialsStarted(
                study_id=message.study_id,
                trial_ids=[t.trial_id for t in message.trials],
                worker=self.name,
                attempt=delivery.attempt,
                started_at=time.time(),
                revision=message.revision,
                preemptions=delivery.preemptions or None,
            ).encode(),
        )
        observability.delivery_started(
            len(message.trials),
            delivery.attempt,
            delivery.properties.timestamp,
            delivery.preemptions,
        )
        threading.Thread(target=self._train, args=(job,), daemon=True, name="train").start()

    def _publish_results(self, job: _Job) -> None:
        # Everything finished since the last commit goes in one: a result of a long trial is
        # published alone at once, those of no-op trials many per broker round trip.
        job.flush_pending.clear()
        if job.abandon.is_set():
            return
        self._publish_queued(job)

    def _publish_queued(self, job: _Job) -> None:
        results = [job.results.popleft() for _ in range(len(job.results))]
        job.batch.publish(
            self.topology.events_exchange, [(result.kind, body) for result, body in results]
        )
        # Trials with confirmed results (a refit's trial once its model is announced).
        job.published.extend(
            r.trial_id for r, _ in results if isinstance(r, TrialResult | ModelStored)
        )
        for result, _ in results:
            if isinstance(result, TrialResult):
                self.trials_done += 1
                observability.result_published(result.status, result.fit_time_s)

    def _ack(self, job: _Job) -> None:
        if job.abandon.is_set():
            return
        self._publish_results(job)  # every result confirmed before the ack, always
        if job.orphaned:
            self._settle(job)
        else:
            job.delivery.ack()
        job.finished.set()
        if self._job is job:
            self._job = None

    def _settle(self, job: _Job) -> None:
        """Announce the orphaned delivery's confirmed results, then consume again."""
        message = job.delivery.message
        if job.published and isinstance(message, TrialMessage):
            settled = TrialsSettled(
                study_id=message.study_id,
                trial_ids=job.published,
                revision=message.revision,
                worker=self.name,
                settled_at=time.time(),
            )
            job.batch.publish(self.topology.events_exchange, [(settled.kind, settled.encode())])
        self._runtime.restart()

    def _requeue(self, job: _Job) -> None:
        if job.abandon.is_set():
            return
        if job.orphaned:  # the broker has the message back already
            self._runtime.restart()
        else:
            job.delivery.requeue()
        job.finished.set()
        if self._job is job:
            self._job = None

    def _reject(self, job: _Job, reason: str) -> None:
        if job.abandon.is_set():
            return
        if job.orphaned:
            # The broker has the message back: it is refused again where it is delivered.
            self._ack(job)
            return
        job.delivery.dead_letter(reason)
        self._ack(job)

    # -- on the training thread ------------------------------------------------------------

    def _call(self, job: _Job, fn: Callable[..., None], *args: object) -> bool:
        if job.delivery.threadsafe(functools.partial(fn, job, *args)):
            return True
        job.abandon.set()  # the connection is gone; the broker redelivers this message
        return False

    def _send(self, job: _Job, events: Sequence[Outgoing]) -> bool:
        """Queue events for the connection thread's next commit (asked for once however many
        are queued meanwhile). False: the job was abandoned, or its connection is gone."""
        job.results.extend((event, event.encode()) for event in events)
        if job.flush_pending.is_set():
            return not job.abandon.is_set()  # the commit already asked for takes these too
        job.flush_pending.set()
        return not job.abandon.is_set() and self._call(job, self._publish_results)

    def _checkpoint(
        self, job: _Job, message: TrialMessage, fold: int, done: Sequence[tuple[str, FoldDone]]
    ) -> None:
        """A fold of the trials in training finished: publish it as a fold checkpoint."""
        checkpoint = fold_checkpoint(
            message.study_id, message.revision, message.folds, fold, done, self.name
        )
        self._send(job, [checkpoint])

    def _cut(
        self,
        job: _Job,
        message: TrialMessage,
        trial_id: str,
        fold: int,
        trained: int,
        rounds: int,
        fit_s: float,
        estimator: Any,
    ) -> None:
        """Told to stop with `checkpoint: rounds`, a fold was cut after round `trained`: store
        its booster (up to TUNEFLEET_ROUND_CHECKPOINT_MAX_BYTES) and queue its record, then have
        the delivery handed back now, the record published first (`_hand_back`). Where it
        cannot be stored, it is handed back without: the next delivery trains the fold again."""
        library = next(t.library for t in message.trials if t.trial_id == trial_id)
        limit = self.settings.tunefleet_round_checkpoint_max_bytes
        try:
            content, fmt = save_native(library, estimator)
            if len(content) > limit:
                raise ValueError(
                    f"{len(content):,} bytes is over TUNEFLEET_ROUND_CHECKPOINT_MAX_BYTES "
                    f"({limit:,})"
                )
            name = f"{message.study_id}-{trial_id}-fold{fold}-round{trained}.{fmt}"
            info, _ = self.data.store().put_bytes(content, kind="model", format=fmt, name=name)
        except Exception as exc:  # a checkpoint saves time, it never holds a hand-back up
            log.warning(
                "study %s: no round checkpoint of trial %s fold %d (cut at round %d): %s",
                message.study_id,
                trial_id,
                fold,
                trained,
                exc,
            )
        else:
            record = RoundCheckpoint(
                study_id=message.study_id,
                revision=message.revision,
                trial_id=trial_id,
                library=library,
                fold=fold,
                folds=message.folds,
                round=trained,
                rounds=rounds,
                fit_time_s=max(0.0, fit_s),
                sha256=info.sha256,
                format=fmt,
                size=info.size,
                worker=self.name,
                saved_at=time.time(),
            )
            job.results.append((record, record.encode()))
            job.cut = record
            self.rounds_saved += 1
            log.info(
                "study %s: trial %s fold %d cut at round %d of %d and stored (%d bytes)",
                message.study_id,
                trial_id,
                fold,
                trained,
                rounds,
                info.size,
            )
        self._call(job, self._hand_back_now)

    def _hand_back_now(self, job: _Job) -> None:
        if not job.finished.is_set() and not job.abandon.is_set():
            self._hand_back(job)  # False: the grace period's end abandons it (`_drain`)

    def _train(self, job: _Job) -> None:
        try:
            self._run(job)
        except Exception as exc:
            # Not a training error (run_family returns those as results) but one around it: the
            # message must not stay in hand, unacked, until the broker's consumer_timeout.
            study = job.delivery.message.study_id
            log.exception("cannot run the trials of a message of study %s", study)
            self._call(job, self._reject, f"worker error: {type(exc).__name__}: {exc}")

    def _run(self, job: _Job) -> None:
        message = job.delivery.message
        if isinstance(message, ModelRefit):
            self._refit(job, message)
            return
        mark = time.monotonic()  # the cost ledger: what each family's results took (ledger)
        try:
            dataset = load_dataset(
                message.dataset, self.settings.tunefleet_data_roots, self.data.path
            )
            task = message.task or dataset.task
            if message.task is not None and message.task != dataset.task:
                raise DatasetError(f"the study says {message.task}, the data is {dataset.task}")
            ctx = TrialContext(
                study_id=message.study_id,
                dataset=dataset,
                metric=message.metric or default_metric(task),
                folds=message.folds,
                seed=message.seed,
                worker=self.name,
                attempts=job.delivery.attempt,
                revision=message.revision,
                threads=self.settings.tunefleet_worker_threads,
                sleep=job.abandon.wait,
                early_stopping=message.early_stopping,
                on_fold=functools.partial(self._checkpoint, job, message),
                abandoned=job.abandon.is_set,
                checkpoint_min_s=self.settings.tunefleet_checkpoint_min_s,
                notice=self._stopping.is_set if message.checkpoint == "rounds" else None,
                on_round=functools.partial(self._cut, job, message),
            )
        except (DatasetError, ValueError) as exc:
            self._call(job, self._reject, f"dataset: {exc}")
            return
        except STORE_ERRORS as exc:
            # The store is out of reach, which is not the message's fault: hand it back, the
            # delivery limit bounds how often.
            log.warning("cannot fetch the dataset of study %s: %s", message.study_id, exc)
            self._call(job, self._requeue)
            return
        ctx.resumed = self._resumed(message, job.delivery.attempt)
        ctx.rounds_resumed = self._resumed_rounds(message, job.delivery.attempt)
        try:
            finished = self._run_families(job, message, ctx, mark)
        except RoundStoppedError:
            return  # cut on a stop: `_cut` has the delivery handed back
        if finished:
            self._call(job, self._ack)

    def _run_families(
        self, job: _Job, message: TrialMessage, ctx: TrialContext, mark: float
    ) -> bool:
        """Compute the message's trials, family by family, sending their results; False where
        the delivery was given up meanwhile (nothing more of it is published or acked)."""
        # One family (trials differing only in their rounds) at a time: its members' results
        # come from the same fits, together.
        for family in families(message.trials):
            if job.abandon.is_set():
                return False
            if self.control.skips(message.study_id, message.revision):
                break  # the rest of the chunk stays without results, for a resume
            # Members settled by another worker's confirmed results are not computed again.
            todo = [t for t in family if not self._settled(message, t.trial_id)]
            if not todo:
                continue
            stop = message.early_stopping.get(family[0].library)
            cores = cores_for(family[0], self.settings.tunefleet_worker_threads)
            pool = self.settings.tunefleet_node_pool
            # With early stopping no trial names its rounds: each is a family of one; with the
            # median rule each reads the curves finished before it starts (in this order).
            parts: Iterator[list[TrialResult]] = (
                (
                    [run_stopped(ctx, t, stop, self._finished_curves(message, t.library))]
                    if stop.median
                    else [run_stopped(ctx, t, stop)]
                    for t in todo
                )
                if stop
                else iter([run_family(ctx, todo)])
            )
            results: list[TrialResult] = []
            for part in parts:  # lazily: each part's time is its own
                now = time.monotonic()
                carried = carried_seconds(part, ctx.resumed, ctx.rounds_resumed, ctx.folds)
                results += charged(part, now - mark, cores, pool, carried)
                mark = now
            # One family's fits: each member says how many of them were taken.
            resumed = max((r.resumed_folds or 0 for r in results), default=0)
            self.folds_resumed += resumed
            observability.FOLDS_RESUMED.inc(resumed)
            self.rounds_resumed += any(r.resumed_at_round for r in results)
            if not self._send(job, results):
                return False
        return True

    def _open_store(self) -> Store | None:
        """The store, connected on first use (lazily: opening it reaches nothing); None where
        this worker has none configured."""
        url = self.settings.mongodb_url
        if url is None:
            return None
        if self._store is None:
            self._store = open_store(
                StoreSettings(
                    mongodb_url=url,
                    mongodb_database=self.settings.mongodb_database,
                    tunefleet_store_timeout_s=self.settings.tunefleet_store_timeout_s,
                )
            )
        return self._store

    def _resumed(self, message: TrialMessage, attempt: int) -> Resumed:
        """The stored fold checkpoints of the message's trials, for a delivery after the first
        (a first delivery has none to find; a hand-back's copy counts its attempts on). Empty
        where the store is not configured or out of reach: then every fold is trained, which
        gives the same result, only later. Trials with early stopping have none (their folds
        advance together and finish together: docs/spec.md)."""
        if attempt <= 1:
            return {}
        ids = [t.trial_id for t in message.trials if t.library not in message.early_stopping]
        store = self._open_store()
        if not ids or store is None:
            return {}
        try:
            with bounded(self.settings.tunefleet_store_timeout_s):
                found = store.fold_checkpoints(
                    message.study_id, message.revision, ids, message.folds
                )
        # Any error, not only the store's: checkpoints save time, they never hold a trial back.
        except Exception as exc:
            log.warning(
                "study %s: training every fold: cannot read the fold checkpoints: %s",
                message.study_id,
                exc,
            )
            return {}
        resumed = resumed_folds(found)
        if resumed:
            log.info(
                "study %s: %d folds of %d trials are checkpointed; training the rest",
                message.study_id,
                len(found),
                len(resumed),
            )
        return resumed

    def _resumed_rounds(self, message: TrialMessage, attempt: int) -> RoundsResumed:
        """The stored round checkpoints of the message's trials (`checkpoint: rounds`, a
        delivery after the first), each fold's of the highest round, fetched from the blob
        store when a fit continues from it. Empty where there are none or the store is out of
        reach: then those folds train from their first round."""
        if attempt <= 1 or message.checkpoint != "rounds":
            return {}
        store = self._open_store()
        ids = [t.trial_id for t in message.trials]
        found: list[RoundRecord] = []
        try:
            if store is not None:
                with bounded(self.settings.tunefleet_store_timeout_s):
                    found = store.round_checkpoints(
                        message.study_id, message.revision, ids, message.folds
                    )
        except Exception as exc:  # as with fold checkpoints: never holds a trial back
            log.warning(
                "study %s: round checkpoints: cannot read the store's: %s", message.study_id, exc
            )
        found += round_records(message)
        return resumed_rounds(found, self.data.store, self.settings.tunefleet_cache_dir)

    def _finished_curves(self, message: TrialMessage, library: str) -> list[dict[str, Any]] | None:
        """The stored curves of the library's finished trials, for the median rule; None (the
        trial runs without the rule, and its summary says so) where the store is not
        configured or out of reach: the rule saves time, it never holds a trial back."""
        try:
            store = self._open_store()
            if store is None:
                log.warning("study %s: median rule off: this worker has no store", message.study_id)
                return None
            return store.finished_curves(message.study_id, message.revision, library)
        except STORE_ERRORS as exc:
            log.warning(
                "study %s: median rule off for a trial: the store: %s", message.study_id, exc
            )
            return None

    def _refit(self, job: _Job, message: ModelRefit) -> None:
        try:
            dataset = load_dataset(
                message.dataset, self.settings.tunefleet_data_roots, self.data.path
            )
            stored = refit(
                message,
                dataset,
                self.data.store(),
                threads=self.settings.tunefleet_worker_threads,
                worker=self.name,
                attempts=job.delivery.attempt,
            )
        except (DatasetError, BlobError) as exc:
            self._call(job, self._reject, f"refit: {exc}")
            return
        except STORE_ERRORS as exc:
            log.warning("cannot refit trial %s: the store: %s", message.trial_id, exc)
            self._call(job, self._requeue)
            return
        if job.abandon.is_set():
            return
        job.results.append((stored, stored.encode()))
        # The model is stored; its event goes out with the ack: a death before that refits
        # again, and the blob's content address makes the second store a no-op.
        self._call(job, self._ack)
