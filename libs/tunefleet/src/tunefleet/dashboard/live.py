"""Following the store, for the dashboard's server-sent events.

The dashboard shows what is *stored* (its tables and figures are the store's queries), so it
follows the store rather than the events exchange: `tunefleet.progress.watch` counts events
seconds before the collector has written them, and a page that re-read the store on such an
event would find nothing new yet. One follower per server reads, every `interval_s`, a change
token of each recent study (its revision, whether it is cancelled, how many results it has);
each page's event stream is told which studies changed and fetches what it shows of them again.

The cost per poll is one query for the recent studies and one count per study still running
(a complete study's token changes only with its record, a resume or a cancel): it does not
grow with the number of trials or of open pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import NamedTuple

from tunefleet_runtime.store import STORE_ERRORS, Store

__all__ = ["Follower", "Token"]

log = logging.getLogger("tunefleet.dashboard")


class Token(NamedTuple):
    revision: int
    cancelled_at: float | None
    results: int


class Follower:
    """Polls the store's change tokens; `changes()` yields the ids of the studies that changed."""

    def __init__(self, store: Store, *, interval_s: float = 0.25, studies: int = 50) -> None:
        self.store = store
        self.interval_s = interval_s
        self.studies = studies
        self.tokens: dict[str, Token] = {}
        self.version = 0  # bumped on every change; pages' caches key on it
        self._n_trials: dict[str, int] = {}
        self._subscribers: set[asyncio.Queue[list[str]]] = set()

    def poll(self) -> list[str]:
        """Read the tokens once (blocking); the ids whose token changed since the last poll."""
        changed: list[str] = []
        current: dict[str, Token] = {}
        for study in self.store.studies(limit=self.studies):
            known = self.tokens.get(study.study_id)
            if (
                known is not None
                and known.revision == study.revision
                and known.cancelled_at == study.cancelled_at
                and known.results >= study.n_trials
            ):
                current[study.study_id] = known  # complete: nothing more to count
                continue
            count, _first = self.store.finished_since(study.study_id, study.revision, 0.0)
            token = Token(study.revision, study.cancelled_at, count)
            current[study.study_id] = token
            if token != known:
                changed.append(study.study_id)
        self.tokens = current
        if changed:
            self.version += 1
        return changed

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
