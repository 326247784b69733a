"""Following the store, for the dashboard's server-sent events.

The dashboard shows what is stored (its tables and figures are computed from the store's
results), or, for a study a page keeps, a result as its worker reported it on the events stream,
which is the message the collector stores. A page is told of a change once the dashboard has it.
One follower per server keeps a change token per recent study (its revision, whether it is
cancelled, how many results it has) and tells every page's event stream which studies changed;
the page fetches what it shows of them again.

What it reads, and when: every `interval_s`, the recent studies' records (one small query),
and a count of the results of each study that the events exchange says is active (an event of
it in the last `linger_s`: the collector writes a result within about its flush interval of
the event). Every `full_every_s` (less often where that takes long), and on every poll while
the broker cannot be reached, it counts every running study, which catches what crosses no
exchange (trials the collector fails from the dead-letter queue). A complete study is not
counted again until its record changes. So an idle fleet costs one small query per poll,
whatever the number of trials or of pages.

With the dashboard's `state.Kept`, no study is counted. One whose results are kept (every study
a page has shown, while it is kept) takes the results the events report as they come
(`StudyResults.reported`), has those it was only told of looked up by id
(`StudyResults.announced`), on every poll until the store has them (or `linger_s` passed), and
the full pass reads what it stored since the latest seen (`StudyResults.catch_up`, in a thread,
at most once per 20 times what the last one took); its token counts what is kept. The token of
a study not kept changes with its record only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import NamedTuple

from tunefleet_contract.messages import DecodeError, TrialResult, TrialsStarted, decode_event
from tunefleet_contract.topology import declare_watch_queue
from tunefleet_runtime.broker import CONNECTION_ERRORS, connect, topology_of
from tunefleet_runtime.records import StudyRecord, TrialStart
from tunefleet_runtime.settings import BrokerSettings
from tunefleet_runtime.store import STORE_ERRORS, Store

from tunefleet.dashboard.state import Kept, StudyResults

__all__ = ["Follower", "Token"]

log = logging.getLogger("tunefleet.dashboard")
# OSError too: a broker address that does not resolve (yet) is a broker away as well.
_BROKER_AWAY: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, OSError)


class Token(NamedTuple):
    revision: int
    cancelled_at: float | None
    results: int
    version: int = 0  # of the kept results (a result replaced changes no count)


class Follower:
    """Follows the store; `changes()` yields the ids of the studies that changed. `settings`:
    the broker whose events say which studies are active (None: count every running study on
    every poll)."""

    def __init__(
        self,
        store: Store,
        settings: BrokerSettings | None = None,
        *,
        interval_s: float = 0.25,
        full_every_s: float = 15.0,
        linger_s: float = 5.0,
        studies: int = 50,
        kept: Kept | None = None,
        background: bool = True,
    ) -> None:
        self.store = store
        self.kept = kept
        self.background = background  # False: kept studies catch up in the poll (tests)
        self._catching_up: set[str] = set()
        self.settings = settings
        self.interval_s = interval_s
        self.full_every_s = full_every_s
        self.linger_s = linger_s
        self.studies = studies
        self.tokens: dict[str, Token] = {}
        self.version = 0  # bumped on every change
        self.events_live = False
        self._active: dict[str, float] = {}  # study id -> when its last event came (monotonic)
        # Study id -> the results its events announced, not yet found stored (-> when noted).
        self._announced: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self._last_full = -float("inf")
        self._full_took = 0.0
        self._subscribers: set[asyncio.Queue[list[str]]] = set()

    def note(self, study_id: str, result: str | None = None) -> None:
        """An event of this study was seen: count its results for a while. `result`: the id of
        the trial whose result it was (looked up until the store has it)."""
        with self._lock:
            now = time.monotonic()
            self._active[study_id] = now
            if result is not None:
                self._announced.setdefault(study_id, {})[result] = now

    def _event(self, body: bytes) -> None:
        event = decode_event(body)
        study_id = getattr(event, "study_id", None)
        if not isinstance(study_id, str):
            return
        kept = self.kept.peek(study_id) if self.kept is not None else None
        if isinstance(event, TrialResult) and kept is not None and event.revision == kept.revision:
            # Shown from the event itself: looking it up by id would scan on FerretDB.
            self.note(study_id)
            kept.reported(event)
            return
        self.note(study_id, event.trial_id if isinstance(event, TrialResult) else None)
        if (
            isinstance(event, TrialsStarted)
            and kept is not None
            and event.revision == kept.revision
        ):
            kept.started(
                TrialStart(
                    t,
                    event.attempt,
                    event.worker,
                    event.started_at,
                    event.revision,
                    event.preemptions or 0,
                )
                for t in event.trial_ids
            )

    def _kept_token(self, study: StudyRecord, full: bool) -> Token | None:
        """The token of a study whose results are kept, brought up to date (None: not kept)."""
        kept = self.kept.peek(study.study_id) if self.kept is not None else None
        if kept is None:
            return None
        if kept.revision != study.revision:
            self.kept.drop(study.study_id)  # type: ignore[union-attr]  # kept: not None
            return None
        if kept.record != study:
            kept.restated(study)
        now = time.monotonic()
        with self._lock:
            waiting = self._announced.get(study.study_id, {})
            self._announced[study.study_id] = {
                t: at for t, at in waiting.items() if now - at < self.linger_s
            }
            ids = list(self._announced[study.study_id])
        if ids:
            kept.announced(self.store, ids)
            found = [t for t in ids if t in kept.records]
            with self._lock:
                left = self._announced.get(study.study_id, {})
                for trial_id in found:
                    left.pop(trial_id, None)
        # A catch-up reads what the study stored since, which scans where the store does
        # (seconds at 100,000 results on FerretDB): made rarer in proportion to what it took,
        # and in a thread of its own, so that what the events announce goes on being looked up.
        if full and now - kept.caught_up_at >= 20 * kept.catch_up_took:
            if self.background:
                self._catch_up_in_background(kept)
            else:
                kept.catch_up(self.store)
        return Token(study.revision, study.cancelled_at, len(kept), kept.version)

    def _catch_up_in_background(self, kept: StudyResults) -> None:
        with self._lock:
            if kept.study_id in self._catching_up:
                return
            self._catching_up.add(kept.study_id)

        def catch_up() -> None:
            try:
                kept.catch_up(self.store)
            except STORE_ERRORS as exc:
                log.warning("cannot read the store: %s", str(exc).split(",")[0])
            finally:
                with self._lock:
                    self._catching_up.discard(kept.study_id)

        threading.Thread(target=catch_up, name="dashboard-catch-up", daemon=True).start()

    def poll(self, *, full: bool | None = None) -> list[str]:
        """Read the tokens once (blocking); the ids whose token changed since the last poll.
        `full`: count every running study (default: when one is due, or without events)."""
        now = time.monotonic()
        if full is None:
            # A full pass that takes long (a store that scans: FerretDB counts 100,000 results
            # in seconds) is made rarer in proportion, so that it never keeps the store busy.
            every = max(self.full_every_s, 20 * self._full_took)
            full = not self.events_live or now - self._last_full >= every
        if full:
            self._last_full = now
        with self._lock:
            self._active = {k: t for k, t in self._active.items() if now - t < self.linger_s}
            active = set(self._active)
        changed: list[str] = []
        current: dict[str, Token] = {}
        for study in self.store.studies(limit=self.studies):
            known = self.tokens.get(study.study_id)
            same_record = (
                known is not None
                and known.revision == study.revision
                and known.cancelled_at == study.cancelled_at
            )
            token = self._kept_token(study, full)
            if token is None and self.kept is not None:
                # Not kept: no page shows it, and counting it would scan where the store does;
                # its record alone says whether it changed (a page that opens it keeps it).
                token = Token(study.revision, study.cancelled_at, *(known or (0, 0, 0, 0))[2:])
            if token is not None:
                current[study.study_id] = token
                if token != known:
                    changed.append(study.study_id)
                continue
            complete = known is not None and known.results >= study.n_trials
            if same_record and (complete or not (full or study.study_id in active)):
                current[study.study_id] = known  # type: ignore[assignment]  # same_record
                continue
            count, _first = self.store.finished_since(study.study_id, study.revision, 0.0)
            token = Token(study.revision, study.cancelled_at, count)
            current[study.study_id] = token
            if token != known:
                changed.append(study.study_id)
        self.tokens = current
        if full:
            self._full_took = time.monotonic() - now
        if changed:
            self.version += 1
        return changed

    def listen(self, stop: threading.Event) -> None:
        """Note the study of every event on the events exchange until `stop` (a thread's
        loop); reconnects while the broker is away, and meanwhile every poll is a full one."""
        if self.settings is None:
            return
        while not stop.is_set():
            connection = None
            try:
                connection, channel = connect(self.settings, retry_for_s=10)
                queue = declare_watch_queue(channel, topology_of(self.settings))
                self.events_live = True
                self._last_full = -float("inf")  # what came while away: count it all once
                for _method, _properties, body in channel.consume(
                    queue, auto_ack=True, inactivity_timeout=1.0
                ):
                    if stop.is_set():
                        break
                    if body is None:
                        continue
                    with contextlib.suppress(DecodeError):  # the collector dead-letters it
                        self._event(body)
            except _BROKER_AWAY as exc:
                log.warning("events: cannot reach RabbitMQ (%s); counting every study", exc)
                self.events_live = False
                stop.wait(2.0)
            finally:
                self.events_live = False
                if connection is not None and connection.is_open:
                    with contextlib.suppress(*CONNECTION_ERRORS):
                        connection.close()

    def token(self, study_id: str) -> Token | None:
        return self.tokens.get(study_id)

    async def run(self) -> None:
        """Poll until cancelled; a store that does not answer is retried, never fatal."""
        while True:
            started = time.monotonic()
            try:
                changed = await asyncio.to_thread(self.poll)
            except STORE_ERRORS as exc:
                log.warning("cannot read the store: %s", str(exc).split(",")[0])
                changed = []
                await asyncio.sleep(2.0)
            if changed:
                for queue in list(self._subscribers):
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.put_nowait(changed)
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    async def changes(self) -> AsyncIterator[list[str]]:
        """The ids that changed, batch by batch, for as long as the caller listens."""
        queue: asyncio.Queue[list[str]] = asyncio.Queue(maxsize=100)
        self._subscribers.add(queue)
        try:
            while True:
                changed = await queue.get()
                while not queue.empty():  # a burst becomes one message
                    changed = [*changed, *queue.get_nowait()]
                yield sorted(set(changed))
        finally:
            self._subscribers.discard(queue)
