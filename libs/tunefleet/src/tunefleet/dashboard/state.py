"""What the dashboard keeps of each study it shows: the current revision's results, read from
the store once and then kept current by what the events stream reports and reads of what
changed only, with the views the pages ask for computed once per change.

A study of 100,000 results takes tens of seconds to read whole where the store scans (FerretDB
on SQLite counts them in 18 s), so it is read whole only once per revision: after that, a
result the events stream reports is taken as the store will keep it (`StudyResults.reported`:
the first of its trial, or one that beats it by `rules.merge`), with no read at all (a lookup by
id scans on FerretDB too: 1.2 to 1.8 s at 100,000 results); results only announced are looked
up by their ids (`Store.results_of`, the primary key), and a periodic catch-up reads what was
stored since the latest result seen (`Store.results_since`, with a margin), which finds what
crosses no exchange (trials failed from the dead-letter queue). A result that replaces another
(a done one after a failed one) replaces it here too. `StudyResults.apply` is the one way in, so
the state after any sequence of reads is the state a full read of the same results builds
(tests/unit/test_dashboard_state.py).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from tunefleet_contract.messages import TrialResult
from tunefleet_runtime.records import StudyActivity, StudyRecord, TrialRecord, TrialStart
from tunefleet_runtime.store import Store
from tunefleet_runtime.store.documents import result_doc, trial_record
from tunefleet_runtime.store.rules import Merge, merge

from tunefleet.dashboard import views
from tunefleet.progress import Progress, from_activity

__all__ = ["CATCH_UP_MARGIN_S", "Kept", "StudyResults"]

# A catch-up reads again from this long before the latest result it saw: writes of one moment
# become visible out of order (two collectors; a batch stored while another is read).
CATCH_UP_MARGIN_S = 30.0

T = TypeVar("T")


def _finished(record: TrialRecord) -> tuple[float, str]:
    return (record.finished_at, record.trial_id)


def _status(record: TrialRecord) -> dict[str, Any]:
    return {"status": record.status, "revision": record.revision}


def _rank(record: TrialRecord) -> tuple[bool, float, str]:
    """The store's order: best first, a result without a score after every scored one; ties by
    trial id, so that the order is the same however the results came."""
    score = record.score
    missing = score is None or not math.isfinite(score)
    return (missing, 0.0 if missing else -score, record.trial_id)  # type: ignore[operator]


class StudyResults:
    """One study's results in one revision, and what is computed from them (cached until the
    next change). Thread-safe: the follower's thread updates, request threads read."""

    def __init__(self, record: StudyRecord) -> None:
        self.study_id = record.study_id
        self.revision = record.revision
        self.record = record
        self.records: dict[str, TrialRecord] = {}
        self.latest: float | None = None  # the latest `stored_at` a read from the store saw
        # When the last read whole or catch-up began (monotonic), and how long it took.
        self.caught_up_at = -math.inf
        self.catch_up_took = 0.0
        self.version = 0  # bumped on every change
        self.lock = threading.RLock()
        self._activity: StudyActivity | None = None
        self._starts: list[TrialStart] = []
        self._memo: dict[str, tuple[int, Any]] = {}
        # The results in the two orders the pages read, kept sorted as results come (a result
        # is placed by bisection: no sort of all of them per change), and the failed ones.
        self._ranked: list[TrialRecord] = []
        self._by_finish: list[TrialRecord] = []
        self._failed: dict[str, TrialRecord] = {}
        # name -> (version, when computed (monotonic), how long it took, value)
        self._paced: dict[str, tuple[int, float, float, Any]] = {}

    def __len__(self) -> int:
        return len(self.records)

    # -- updating -----------------------------------------------------------------------------

    def apply(self, records: Iterable[TrialRecord], latest: float | None = None) -> bool:
        """Take results of this revision (new ones, or ones that replace what is kept); whether
        anything changed. `latest`: the latest `stored_at` of the read they came from."""
        changed = False
        with self.lock:
            for record in records:
                if record.revision != self.revision or record.study_id != self.study_id:
                    continue
                known = self.records.get(record.trial_id)
                if known == record:
                    continue
                self.records[record.trial_id] = record
                changed = True
                if known is not None:
                    self._activity = None  # a result replaced: count again from all of them
                    _remove(self._ranked, known, _rank)
                    _remove(self._by_finish, known, _finished)
                    self._failed.pop(known.trial_id, None)
                elif self._activity is not None:
                    self._activity.load([record], [])
                bisect.insort(self._ranked, record, key=_rank)
                bisect.insort(self._by_finish, record, key=_finished)
                if record.status == "failed":
                    self._failed[record.trial_id] = record
            if latest is not None:
                self.latest = latest if self.latest is None else max(self.latest, latest)
            if changed:
                self.version += 1
        return changed

    def reported(self, result: TrialResult) -> bool:
        """A result as its worker published it on the events stream, taken as the store will keep
        it (the collector stores the same message): the first of its trial, or one that beats
        what is kept (`rules.merge`). Whether anything changed. The catch-up brings what the
        store made of it where that differs (a result the collector refused is never stored,
        and a later full read drops it)."""
        record = trial_record(result_doc(result, time.time()))
        with self.lock:
            known = self.records.get(record.trial_id)
            if known is not None and merge(_status(known), _status(record)) is not Merge.REPLACE:
                return False
            return self.apply([record])

    def load(self, store: Store) -> None:
        """Read the revision's results whole (once), and what runs."""
        began = time.monotonic()
        records, latest = store.results_since(self.study_id, self.revision, 0.0)
        starts = store.starts(self.study_id, self.revision)
        with self.lock:
            self.apply(records, latest)
            self.started(starts)
            self.caught_up_at, self.catch_up_took = began, time.monotonic() - began

    def announced(self, store: Store, trial_ids: Iterable[str]) -> bool:
        """Look up the results the events stream announced (by id); whether any was new."""
        ids = set(trial_ids)
        return bool(ids) and self.apply(store.results_of(self.study_id, self.revision, ids))

    def catch_up(self, store: Store) -> bool:
        """Read what was stored since the latest result seen (less the margin), and the starts
        again; whether anything changed."""
        began = time.monotonic()
        since = 0.0 if self.latest is None else self.latest - CATCH_UP_MARGIN_S
        records, latest = store.results_since(self.study_id, self.revision, since)
        # What runs, read again: starts that came while the events could not be heard.
        starts = store.starts(self.study_id, self.revision)
        with self.lock:
            changed = self.apply(records, latest)
            if len(starts) != len(self._starts):
                self._starts = starts
                self._activity = None  # counted again from the results and these
                self.version += 1
                changed = True
            self.caught_up_at, self.catch_up_took = began, time.monotonic() - began
        return changed

    def started(self, starts: Iterable[TrialStart]) -> None:
        """Trials that started (the store's, or the events'): what runs, for the progress."""
        with self.lock:
            fresh = list(starts)
            self._starts.extend(fresh)
            if self._activity is not None:
                self._activity.load([], fresh)

    def starts(self) -> list[TrialStart]:
        """The starts read with the results, and those the events told of since."""
        with self.lock:
            return list(self._starts)

    def restated(self, record: StudyRecord) -> None:
        """The study's record changed within the revision (cancelled, resumed)."""
        with self.lock:
            self.record = record
            if self._activity is not None:
                self._activity.study(record)
            self.version += 1

    # -- reading ------------------------------------------------------------------------------

    def memo(self, name: str, compute: Callable[[list[TrialRecord]], T]) -> T:
        """`compute` of the ranked results, once per change (`name` says what it computes)."""
        with self.lock:
            hit = self._memo.get(name)
            if hit is not None and hit[0] == self.version:
                return hit[1]  # type: ignore[no-any-return]
            if len(self._memo) > 32:  # what earlier versions computed
                self._memo = {k: v for k, v in self._memo.items() if v[0] == self.version}
            value = compute(self._ranked)
            self._memo[name] = (self.version, value)
            return value

    def paced(self, name: str, compute: Callable[[], T], *, share: float = 0.2) -> T:
        """`compute()` again after a change only once the time it took last is at most `share`
        of the time since: what the figures cost (the report's plots, seconds at 100,000
        results) stays a bounded share of the server's time, and meanwhile the last ones are
        served (each page redraws its figures at most every 10 s anyway)."""
        with self.lock:
            hit = self._paced.get(name)
            now = time.monotonic()
            if hit is not None and (hit[0] == self.version or now - hit[1] < hit[2] / share):
                return hit[3]  # type: ignore[no-any-return]
            version = self.version
        began = time.monotonic()
        value = compute()
        with self.lock:
            self._paced[name] = (version, began, time.monotonic() - began, value)
        return value

    def ranked(self) -> list[TrialRecord]:
        """The results best first, failed ones last (the order `Store.results` gives); a copy
        made once per change."""
        return self.memo("ranked", list)

    def best_so_far(self) -> dict[str, Any]:
        """`views.best_so_far`, from the results already in the order they finished."""
        with self.lock:
            hit = self._memo.get("best")
            if hit is None or hit[0] != self.version:
                hit = (self.version, views.best_so_far(self._by_finish))
                self._memo["best"] = hit
            return hit[1]

    def leaderboard(self, per_library: int = 5) -> dict[str, Any]:
        """`views.leaderboard`, from the best results only: the ranked results are read until
        each of the study's libraries has its `per_library` (or they run out)."""

        def compute(ranked: list[TrialRecord]) -> dict[str, Any]:
            libraries = set(self.record.spec.search)
            seen: dict[str, int] = {}
            top = []
            for record in ranked:
                if _rank(record)[0]:
                    break  # ranked: no scored one after the first unscored
                if record.status != "done":
                    continue
                if seen.get(record.library, 0) < per_library:
                    seen[record.library] = seen.get(record.library, 0) + 1
                    top.append(record)
                    full = sum(1 for lib in libraries if seen.get(lib, 0) >= per_library)
                    if full == len(libraries) and set(seen) <= libraries:
                        break
            return views.leaderboard(top, per_library=per_library)

        return self.memo(f"leaderboard:{per_library}", compute)

    def failures(self) -> dict[str, Any]:
        with self.lock:
            hit = self._memo.get("failures")
            if hit is None or hit[0] != self.version:
                hit = (self.version, views.failures(list(self._failed.values())))
                self._memo["failures"] = hit
            return hit[1]

    def table(self, query: views.TrialQuery) -> dict[str, Any]:
        """`views.trial_table`; the table's first view (no filter, best first) is a slice of
        the ranked results."""
        plain = views.TrialQuery(offset=query.offset, limit=query.limit)
        if query == plain:  # the default order: by score, descending
            with self.lock:
                page = self._ranked[query.offset : query.offset + query.limit]
                total = len(self._ranked)
            return {
                "total": total,
                "matched": total,
                "offset": query.offset,
                "limit": query.limit,
                "rows": [views.trial_row(r) for r in page],
            }
        return self.memo(repr(query), lambda ranked: views.trial_table(ranked, query))

    def progress(self) -> Progress:
        with self.lock:
            activity = self._activity
            if activity is None:
                activity = StudyActivity(self.study_id, revision=self.revision)
                activity.study(self.record)
                activity.load(self.records.values(), self._starts)
                self._activity = activity
            return from_activity(activity, [r.finished_at for r in self.records.values()])


def _remove(
    ordered: list[TrialRecord], record: TrialRecord, key: Callable[[TrialRecord], Any]
) -> None:
    """Take `record` out of a list sorted by `key` (found by bisection)."""
    at = bisect.bisect_left(ordered, key(record), key=key)
    while at < len(ordered) and ordered[at].trial_id != record.trial_id:
        at += 1  # records equal by key: the one of this trial
    if at < len(ordered):
        del ordered[at]


class Kept:
    """The studies' `StudyResults`, the most recently used kept while their results together
    number at most `max_results` (a study larger than that alone is kept while it is used)."""

    def __init__(self, store: Store, *, max_results: int = 1_000_000) -> None:
        self.store = store
        self.max_results = max_results
        self._kept: OrderedDict[str, StudyResults] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, record: StudyRecord) -> StudyResults:
        """The study's results in its current revision, read whole first if not kept."""
        with self._lock:
            kept = self._kept.get(record.study_id)
            if kept is not None and kept.revision == record.revision:
                self._kept.move_to_end(record.study_id)
                if kept.record != record:
                    kept.restated(record)
                return kept
            loading = self._loading.setdefault(record.study_id, threading.Lock())
        with loading:  # one read whole per study, however many pages ask at once
            with self._lock:
                kept = self._kept.get(record.study_id)
            if kept is not None and kept.revision == record.revision:
                return kept
            fresh = StudyResults(record)
            fresh.load(self.store)
            with self._lock:
                self._kept[record.study_id] = fresh
                self._kept.move_to_end(record.study_id)
                self._evict()
            return fresh

    def peek(self, study_id: str) -> StudyResults | None:
        """The study's results if kept (never reads)."""
        with self._lock:
            return self._kept.get(study_id)

    def drop(self, study_id: str) -> None:
        with self._lock:
            self._kept.pop(study_id, None)

    def _evict(self) -> None:
        total = sum(len(k) for k in self._kept.values())
        while len(self._kept) > 1 and total > self.max_results:
            _, oldest = self._kept.popitem(last=False)
            total -= len(oldest)

    def stats(self) -> dict[str, int]:
        """What is kept: studies and results (the dashboard's memory is mostly these)."""
        with self._lock:
            return {
                "studies": len(self._kept),
                "results": sum(len(k) for k in self._kept.values()),
            }
