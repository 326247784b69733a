"""What the dashboard's pages show, computed on the server from the store's records: JSON-ready
dicts, bounded in size whatever the study's size (a page of the trial table, a downsampled
best-so-far series, the top trials per library), so that the browser never holds all trials.

Pure functions of records; the app reads the store and calls these.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tunefleet_runtime.records import StudyRecord, TrialRecord, TrialStart

from tunefleet.progress import Progress

__all__ = [
    "MAX_PAGE",
    "MAX_POINTS",
    "TrialQuery",
    "best_so_far",
    "compared",
    "failures",
    "fleet",
    "iso",
    "leaderboard",
    "spread",
    "study_row",
    "trial_row",
    "trial_table",
]

# At most this many points per series sent to a browser (the scatter of scores is sampled).
MAX_POINTS = 2000
# The trial table's pages are at most this long.
MAX_PAGE = 200
_SORTS = ("score", "finished_at", "fit_time_s", "attempts", "trial_id", "library", "worker")
_STATUSES = ("done", "failed")


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def spread(n: int, limit: int) -> list[int]:
    """`limit` indices spread evenly over range(n), the first and last included (all of them
    when n <= limit)."""
    if n <= limit:
        return list(range(n))
    if limit <= 1:
        return [n - 1][:limit]
    step = (n - 1) / (limit - 1)
    return sorted({round(i * step) for i in range(limit)})


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())
    )


def trial_row(record: TrialRecord) -> dict[str, Any]:
    return {
        "trial_id": record.trial_id,
        "library": record.library,
        "status": record.status,
        "score": _number(record.score),
        "score_std": _number(record.score_std),
        "fit_time_s": _number(record.fit_time_s),
        "attempts": record.attempts,
        "worker": record.worker,
        "finished_at": iso(record.finished_at),
        "params": _params_text(record.params),
        "reason": record.reason,
        "error": (record.error or "")[:300] or None,
    }


def _scored(records: Iterable[TrialRecord]) -> list[TrialRecord]:
    return [r for r in records if r.status == "done" and _number(r.score) is not None]


def study_row(record: StudyRecord, progress: Progress) -> dict[str, Any]:
    """A line of the studies page."""
    return {
        "study_id": record.study_id,
        "name": record.spec.name,
        "submitted_at": iso(record.submitted_at),
        "n_trials": record.n_trials,
        "done": progress.done,
        "failed": progress.failed,
        "running": progress.running,
        "best_score": _number(progress.best_score),
        "metric": progress.metric,
        "state": str(progress.state),
        "libraries": list(record.spec.search),
        # The cost ledger (issue 21) fills this in once it exists; until then it is unknown.
        "cost": None,
    }


def best_so_far(records: Sequence[TrialRecord], limit: int = MAX_POINTS) -> dict[str, Any]:
    """The best score over time: the steps where it improved (few, whatever the study's size:
    a record is a step only if it beats every earlier one), and per library a sample of at most
    `limit` scores in the order they finished."""
    done = sorted(_scored(records), key=lambda r: r.finished_at)
    steps: dict[str, list[Any]] = {"x": [], "y": [], "trial_id": []}
    best = -math.inf
    for record in done:
        score = float(record.score)  # type: ignore[arg-type]  # _scored: not None
        if score > best:
            best = score
            steps["x"].append(iso(record.finished_at))
            steps["y"].append(score)
            steps["trial_id"].append(record.trial_id)
    if done and steps["x"][-1] != iso(done[-1].finished_at):
        # The line runs on to the latest result (flat since the last improvement).
        steps["x"].append(iso(done[-1].finished_at))
        steps["y"].append(best)
        steps["trial_id"].append(steps["trial_id"][-1])
    by_library: dict[str, list[TrialRecord]] = {}
    for record in done:
        by_library.setdefault(record.library, []).append(record)
    share = max(1, limit // max(1, len(by_library)))
    points = {
        library: {
            "x": [iso(part[i].finished_at) for i in spread(len(part), share)],
            "y": [part[i].score for i in spread(len(part), share)],
            "trial_id": [part[i].trial_id for i in spread(len(part), share)],
        }
        for library, part in sorted(by_library.items())
    }
    return {"steps": steps, "points": points, "n": len(done)}


def leaderboard(records: Iterable[TrialRecord], per_library: int = 5) -> dict[str, Any]:
    """The best `per_library` trials of each library, best first."""
    ranked = sorted(_scored(records), key=lambda r: -float(r.score))  # type: ignore[arg-type]
    table: dict[str, list[dict[str, Any]]] = {}
    for record in ranked:
        rows = table.setdefault(record.library, [])
        if len(rows) < per_library:
            rows.append(trial_row(record))
    return dict(sorted(table.items()))


def failures(records: Iterable[TrialRecord], limit: int = 50) -> dict[str, Any]:
    """The failed trials (the most recent `limit`), with their reasons counted."""
    failed = sorted(
        (r for r in records if r.status == "failed"), key=lambda r: r.finished_at, reverse=True
    )
    reasons: dict[str, int] = {}
    for record in failed:
        key = record.reason or (record.error or "unknown").splitlines()[0][:120]
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "count": len(failed),
        "reasons": sorted(reasons.items(), key=lambda kv: -kv[1]),
        "recent": [trial_row(r) for r in failed[:limit]],
    }


@dataclass(frozen=True)
class TrialQuery:
    """A filter, an order and a page of a study's trial table (from the URL's query)."""

    library: str | None = None
    status: str | None = None
    text: str | None = None  # in the trial id, worker, parameters, reason or error
    min_score: float | None = None
    sort: str = "score"
    descending: bool = True
    offset: int = 0
    limit: int = 50

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> TrialQuery:
        """From the query string; ValueError naming the parameter that is wrong."""

        def number(name: str, kind: type[int] | type[float]) -> Any:
            value = query.get(name)
            if value in (None, ""):
                return None
            try:
                return kind(value)
            except ValueError:
                raise ValueError(f"{name}: {value!r} is not a number") from None

        sort = query.get("sort") or "score"
        if sort not in _SORTS:
            raise ValueError(f"sort: {sort!r} is not one of {', '.join(_SORTS)}")
        status = query.get("status") or None
        if status is not None and status not in _STATUSES:
            raise ValueError(f"status: {status!r} is not one of {', '.join(_STATUSES)}")
        order = query.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise ValueError(f"order: {order!r} is not asc or desc")
        offset = number("offset", int) or 0
        limit = number("limit", int)
        limit = 50 if limit is None else limit
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"offset must be >= 0 and limit between 1 and {MAX_PAGE}")
        min_score = number("min_score", float)
        if min_score is not None and not math.isfinite(min_score):
            raise ValueError("min_score: must be finite")
        return cls(
            library=query.get("library") or None,
            status=status,
            text=(query.get("q") or "").strip().lower() or None,
            min_score=min_score,
            sort=sort,
            descending=order == "desc",
            offset=offset,
            limit=limit,
        )

    def matches(self, record: TrialRecord) -> bool:
        if self.library is not None and record.library != self.library:
            return False
        if self.status is not None and record.status != self.status:
            return False
        if self.min_score is not None and not (
            _number(record.score) is not None and record.score >= self.min_score  # type: ignore[operator]
        ):
            return False
        if self.text is not None:
            haystack = " ".join(
                (
                    record.trial_id,
                    record.worker,
                    _params_text(record.params),
                    record.reason or "",
                    record.error or "",
                )
            ).lower()
            return self.text in haystack
        return True

    def key(self, record: TrialRecord) -> tuple[int, Any]:
        """Sort key; missing values go last in either order."""
        value = getattr(record, self.sort)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        if value is None:
            return (1, 0)
        return (0, -value if self.descending and isinstance(value, int | float) else value)


def trial_table(records: Sequence[TrialRecord], query: TrialQuery) -> dict[str, Any]:
    """One page of the study's trials that match the query, in its order."""
    matched = [r for r in records if query.matches(r)]
    numeric = query.sort not in ("trial_id", "library", "worker")
    matched.sort(key=query.key, reverse=query.descending and not numeric)
    if query.descending and not numeric:
        # Reversed as a whole, missing values came first: put them back last.
        matched.sort(key=lambda r: query.key(r)[0])
    page = matched[query.offset : query.offset + query.limit]
    return {
        "total": len(records),
        "matched": len(matched),
        "offset": query.offset,
        "limit": query.limit,
        "rows": [trial_row(r) for r in page],
    }


def fleet(
    starts: Iterable[tuple[str, TrialStart]],
    results: Iterable[TrialRecord],
    now: float,
    window_s: float = 300.0,
) -> list[dict[str, Any]]:
    """The workers the store has seen in these studies' current revisions: what each runs
    (a start without a result), when it was last heard of (its latest start or result: the
    store keeps no heartbeat of its own), and its throughput over `window_s`."""
    finished = {r.trial_id for r in results}
    workers: dict[str, dict[str, Any]] = {}

    def worker(name: str) -> dict[str, Any]:
        return workers.setdefault(
            name,
            {"worker": name, "running": [], "last_seen": 0.0, "recent": 0, "done": 0, "failed": 0},
        )

    latest: dict[str, tuple[str, TrialStart]] = {}
    for study_id, start in starts:
        known = latest.get(start.trial_id)
        if known is None or start.attempt >= known[1].attempt:
            latest[start.trial_id] = (study_id, start)
        entry = worker(start.worker)
        entry["last_seen"] = max(entry["last_seen"], start.started_at)
    for trial_id, (study_id, start) in latest.items():
        if trial_id not in finished:
            worker(start.worker)["running"].append(
                {"trial_id": trial_id, "study_id": study_id, "since": iso(start.started_at)}
            )
    for record in results:
        if not record.worker:
            continue
        entry = worker(record.worker)
        entry["last_seen"] = max(entry["last_seen"], record.finished_at)
        entry["done" if record.status == "done" else "failed"] += 1
        if record.finished_at > now - window_s:
            entry["recent"] += 1
    rows = []
    for entry in workers.values():
        entry["idle_s"] = round(max(0.0, now - entry["last_seen"]), 1)
        entry["last_seen"] = iso(entry["last_seen"])
        entry["per_min"] = round(entry.pop("recent") * 60.0 / window_s, 2)
        rows.append(entry)
    return sorted(rows, key=lambda e: (not e["running"], e["worker"]))


def compared(
    record: StudyRecord, progress: Progress, records: Sequence[TrialRecord]
) -> dict[str, Any]:
    """A study's side of a comparison: its line of the studies page, the best score per
    library, and its best-so-far steps against the time since its first result (two studies
    run at different times, so their clocks are not compared)."""
    done = sorted(_scored(records), key=lambda r: r.finished_at)
    steps: dict[str, list[Any]] = {"x": [], "y": []}
    best = -math.inf
    for record_ in done:
        score = float(record_.score)  # type: ignore[arg-type]  # _scored: not None
        if score > best:
            best = score
            steps["x"].append(record_.finished_at - done[0].finished_at)
            steps["y"].append(score)
    if done and steps["x"][-1] != done[-1].finished_at - done[0].finished_at:
        steps["x"].append(done[-1].finished_at - done[0].finished_at)
        steps["y"].append(best)
    board = leaderboard(records, per_library=1)
    return {
        **study_row(record, progress),
        "best_by_library": {library: rows[0] for library, rows in board.items()},
        "steps": steps,
        "fit_time_s": sum(r.fit_time_s or 0.0 for r in records),
    }
