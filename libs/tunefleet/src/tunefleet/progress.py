"""Live progress of a study, from the broker's event stream.

A watcher binds an exclusive, auto-deleted queue to the events exchange *before* it reads the
store once; from then on every `trial.started`, `trial.result` and `study.cancelled` event
updates its counts as workers publish them, seconds before the collector has stored them. It
re-reads the store only every `resync_s` (default 15 s) to pick up what never crosses the events
exchange: trials the collector fails itself from the dead-letter queue, and events dropped while
the watcher was stalled. Events of an older revision of the study than the one it counts are
ignored (the store shows the current revision only); one of a newer revision (a resume) makes
it start over from the store. While an adaptive search is deciding, its plan (which the planner
writes to the store, with no event) is read every 2 s, and while the study is not registered
the store is read every second.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from typing import Any

import pika
from tunefleet_contract.messages import (
    DecodeError,
    StudyCancelled,
    StudyRegistered,
    StudyResumed,
    TrialResult,
    TrialsPlanned,
    TrialsStarted,
    decode_event,
)
from tunefleet_contract.search.views import SearchStatus
from tunefleet_contract.topology import declare_watch_queue
from tunefleet_runtime.broker import CONNECTION_ERRORS, connect, topology_of
from tunefleet_runtime.records import (
    PlannedTrial,
    StudyActivity,
    StudyRecord,
    StudyState,
    TrialRecord,
    TrialStart,
    is_complete,
    study_state,
)
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store import STORE_ERRORS, Store

__all__ = ["Progress", "from_activity", "from_records", "from_store", "watch"]

# Throughput is measured over this trailing window of results seen live.
_RATE_WINDOW_S = 60.0
# An adaptive search's decisions reach the store only (no event carries them): while one is
# deciding, its plan is read again this often.
_PLAN_EVERY_S = 2.0


@dataclass
class Progress:
    """One snapshot of a study; the names match `store.StudyStatus` where both have them."""

    study_id: str
    n_trials: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    redelivered: int = 0
    redeliveries: int = 0  # deliveries the broker made again (crashes, lost connections)
    workers: int = 0
    best_score: float | None = None
    best_trial_id: str | None = None
    metric: str | None = None
    cancelled: bool = False
    registered: bool = False
    throughput: float | None = None  # trials per second, over the last minute
    eta_s: float | None = None
    events: int = 0  # events seen live (0 means: only the store's snapshot so far)
    stored: int = 0  # results the store held at the last read
    searches: tuple[SearchStatus, ...] = ()  # per library: its strategy, how far, its best
    undecided: int = 0  # trials adaptive searches have yet to decide
    budget_spent: bool = False  # the planner stopped it: its budget is spent
    core_s_by_pool: Mapping[str, float] = field(default_factory=dict)  # results' core-seconds

    preempted: int = 0  # trials handed back by stopped workers (not failures, not redeliveries)
    preemptions: int = 0  # those hand-backs in all

    @property
    def core_s(self) -> float:
        return sum(self.core_s_by_pool.values())

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def queued(self) -> int:
        return max(0, self.n_trials - self.finished - self.running - self.undecided)

    @property
    def complete(self) -> bool:
        """Every trial has a result, and the store has them all (not only the events)."""
        return (
            self.registered
            and is_complete(self.finished, self.n_trials)
            and self.stored >= self.n_trials
        )

    @property
    def state(self) -> StudyState:
        """Where the study stands, as the events tell it (the store may lag a moment)."""
        return study_state(
            registered=self.registered,
            cancelled=self.cancelled,
            complete=is_complete(self.finished, self.n_trials),
            started=bool(self.finished or self.running),
            budget_spent=self.budget_spent,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "study_id": self.study_id,
            "n_trials": self.n_trials,
            "done": self.done,
            "failed": self.failed,
            "running": self.running,
            "queued": self.queued,
            "undecided": self.undecided,
            "redelivered": self.redelivered,
            "redeliveries": self.redeliveries,
            "preempted": self.preempted,
            "preemptions": self.preemptions,
            "workers": self.workers,
            "best_score": self.best_score,
            "best_trial_id": self.best_trial_id,
            "metric": self.metric,
            "cancelled": self.cancelled,
            "state": str(self.state),
            "core_s": self.core_s,
            "core_s_by_pool": dict(self.core_s_by_pool),
            "complete": self.complete,
            "throughput_per_s": self.throughput,
            "eta_s": self.eta_s,
            "searches": [search.as_dict() for search in self.searches],
        }


@dataclass
class _State:
    """A watcher's view: the study's `StudyActivity` read from the store, kept current from
    events, with what only a live view has (throughput, what the store has confirmed)."""

    study_id: str
    revision: int = 0
    n_trials: InitVar[int] = 0
    registered: InitVar[bool] = False
    stale: bool = False  # a newer revision was seen: counts start over from the store
    recent: collections.deque[float] = field(default_factory=collections.deque)
    events: int = 0
    stored: int = 0
    started: float = field(default_factory=time.monotonic)
    plan_read: float = 0.0  # when the store's plan was last read (monotonic)
    activity: StudyActivity = field(init=False)

    def __post_init__(self, n_trials: int, registered: bool) -> None:
        self.activity = StudyActivity(
            self.study_id, revision=self.revision, n_trials=n_trials, registered=registered
        )

    def load(self, store: Store) -> None:
        """Merge the store's view (within a revision results are write-once, so merging never
        goes back); a new revision in the store starts the counts over."""
        study = store.study(self.study_id)
        if study is None:
            return
        if study.revision < self.revision:
            return  # events of a resume came first; the collector has yet to record it
        if study.revision > self.revision:
            self._start_over(study.revision)
        self.stale = False
        self.activity.study(study)
        results = store.results(self.study_id, self.revision)
        self.activity.load(results, store.starts(self.study_id, self.revision))
        if study.spec.adaptive:
            self.read_plan(store)
        self.stored = len(results)

    def read_plan(self, store: Store) -> None:
        """What the study's adaptive searches have decided so far."""
        self.plan_read = time.monotonic()
        self.activity.plan(t for t in store.plan(self.study_id) if t.revision == self.revision)

    def deciding(self, snapshot: Progress) -> bool:
        """An adaptive search has trials left to decide, and its plan was read a while ago."""
        return time.monotonic() - self.plan_read > _PLAN_EVERY_S and any(
            s.adaptive and s.decided < (s.n_trials or 0) for s in snapshot.searches
        )

    def _start_over(self, revision: int) -> None:
        self.revision = revision
        self.activity.restart(revision)
        self.stored = 0

    def apply(self, event: object) -> None:
        if getattr(event, "study_id", None) != self.study_id:
            return
        revision = getattr(event, "revision", self.revision)
        if revision < self.revision:
            return  # superseded: the store does not count it either
        if revision > self.revision:
            # A resume: what it keeps and drops is in the store; until it is read again, count
            # from this revision's events only.
            self._start_over(revision)
            self.stale = True
        self.events += 1
        if isinstance(event, StudyRegistered):
            self.activity.registration(event.n_trials, event.spec)
        elif isinstance(
            event, TrialResult | TrialsStarted | TrialsPlanned | StudyCancelled | StudyResumed
        ) and self.activity.apply(event):
            self.recent.append(time.monotonic())

    def snapshot(self) -> Progress:
        now = time.monotonic()
        while self.recent and now - self.recent[0] > _RATE_WINDOW_S:
            self.recent.popleft()
        window = min(_RATE_WINDOW_S, now - self.started)
        rate = len(self.recent) / window if self.recent and window > 1.0 else None
        status = self.activity.status()
        remaining = max(0, status.n_trials - status.finished)
        return Progress(
            study_id=self.study_id,
            n_trials=status.n_trials,
            done=status.done,
            failed=status.failed,
            running=status.running,
            redelivered=status.redelivered,
            redeliveries=status.redeliveries,
            workers=status.workers,
            best_score=status.best_score,
            best_trial_id=status.best_trial_id,
            metric=status.metric,
            cancelled=status.cancelled,
            registered=status.registered,
            throughput=rate,
            eta_s=remaining / rate if rate else None,
            events=self.events,
            stored=self.stored,
            searches=status.searches,
            undecided=status.undecided,
            budget_spent=status.budget_spent,
            core_s_by_pool=status.core_s_by_pool,
            preempted=status.preempted,
            preemptions=status.preemptions,
        )


def from_store(store: Store, study_id: str, *, window_s: float = 300.0) -> Progress:
    """A snapshot read from the store alone (for one-shot `status`): throughput is measured
    over results stored in the last `window_s` seconds."""
    state = _State(study_id)
    state.load(store)
    snapshot = state.snapshot()
    recent, first = store.finished_since(study_id, state.revision, time.time() - window_s)
    if recent and first is not None:
        span = min(window_s, time.time() - first)
        snapshot.throughput = recent / max(span, 1.0)
        remaining = max(0, snapshot.n_trials - snapshot.finished)
        snapshot.eta_s = remaining / snapshot.throughput if remaining else None
    return snapshot


def from_records(
    study: StudyRecord,
    results: Sequence[TrialRecord],
    starts: Iterable[TrialStart],
    plan: Iterable[PlannedTrial] = (),
    *,
    window_s: float = 300.0,
) -> Progress:
    """`from_store`'s snapshot from records the caller has already read (the dashboard keeps a
    study's results while they are unchanged): `results` and `starts` of the study's current
    revision, `plan` its plan where it is adaptive."""
    activity = StudyActivity(study.study_id, revision=study.revision)
    activity.study(study)
    activity.load(results, starts)
    if study.spec.adaptive:
        activity.plan(t for t in plan if t.revision == study.revision)
    return from_activity(activity, [r.finished_at for r in results], window_s=window_s)


def from_activity(
    activity: StudyActivity, finished_at: Sequence[float], *, window_s: float = 300.0
) -> Progress:
    """The snapshot of a `StudyActivity` the caller keeps (loaded from the store's records,
    as `from_records` does), with when its stored results finished (for the throughput)."""
    state = _State(activity.study_id, revision=activity.revision)
    state.activity = activity
    state.stored = len(finished_at)
    snapshot = state.snapshot()
    cutoff = time.time() - window_s
    recent = sum(1 for t in finished_at if t > cutoff)
    if recent:
        first = min(finished_at)
        snapshot.throughput = recent / max(min(window_s, time.time() - first), 1.0)
        remaining = max(0, snapshot.n_trials - snapshot.finished)
        snapshot.eta_s = remaining / snapshot.throughput if remaining else None
    return snapshot


def watch(
    settings: ClientSettings,
    store: Store,
    study_id: str,
    *,
    tick_s: float = 1.0,
    resync_s: float = 15.0,
    until: Callable[[Progress], bool] | None = None,
    revision: int = 0,
) -> Iterator[Progress]:
    """Yield a snapshot at least every `tick_s` seconds, and after events, until `until` is
    true of one (the last one yielded) or the caller stops iterating.

    `revision`: count nothing older (after a resume, the store may not have recorded it yet,
    and the older revision's counts could say "complete").

    Outages do not end it: while the broker is away it reads the store every few seconds and
    reconnects; while the store is away it goes on counting events (completion still waits
    for the store to hold every result)."""
    state = _State(study_id, revision=revision)

    def load() -> None:
        with contextlib.suppress(*STORE_ERRORS):
            state.load(store)

    connection: pika.BlockingConnection | None = None
    try:
        while True:
            try:
                connection, channel = connect(settings, retry_for_s=10)
                queue = declare_watch_queue(channel, topology_of(settings))
            except CONNECTION_ERRORS:
                connection = None
                load()
                snapshot = state.snapshot()
                yield snapshot
                if until is not None and until(snapshot):
                    return
                time.sleep(max(tick_s, 2.0))
                continue
            # Bound before the store is read: every later result is in the store or an event.
            load()
            # Results published just before the bind and not yet written by the collector (it
            # batches for up to TUNEFLEET_COLLECTOR_FLUSH_S) are in neither: read again soon.
            last_sync = time.monotonic() - resync_s + 2.0
            snapshot = state.snapshot()
            yield snapshot
            if until is not None and until(snapshot):
                return
            try:
                for _method, _properties, body in channel.consume(
                    queue, auto_ack=True, inactivity_timeout=tick_s
                ):
                    if body is not None:
                        # Not ours to judge: the collector dead-letters bad events.
                        with contextlib.suppress(DecodeError):
                            state.apply(decode_event(body))
                    current = state.snapshot()
                    events_say_done = (
                        current.registered and current.finished >= current.n_trials > 0
                    )
                    since_sync = time.monotonic() - last_sync
                    if (
                        since_sync > resync_s
                        or (state.stale and since_sync > 1.0)
                        # Registered before this watcher bound (its event missed) and not yet
                        # stored at the first read: read again soon, not in resync_s.
                        or (not current.registered and since_sync > 1.0)
                        or (events_say_done and body is None and not current.complete)
                    ):
                        # Completion is confirmed by the store: results() right after sees all.
                        load()
                        last_sync = time.monotonic()
                    elif state.deciding(current):
                        with contextlib.suppress(*STORE_ERRORS):
                            state.read_plan(store)
                    snapshot = state.snapshot()
                    if body is not None and channel.get_waiting_message_count() > 0:
                        continue  # drain a burst before redrawing
                    yield snapshot
                    if until is not None and until(snapshot):
                        return
            except CONNECTION_ERRORS:
                continue  # the broker went away: reconnect (events meanwhile come from the store)
    finally:
        if connection is not None and connection.is_open:
            connection.close()
