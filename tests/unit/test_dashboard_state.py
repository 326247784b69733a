"""What the dashboard keeps of a study (`tunefleet.dashboard.state`): kept current by reads of
what changed only, it equals what a full read of the same results builds, and the follower
looks up the results the events announce by id rather than counting the study again."""

from __future__ import annotations

import random
import time
from typing import Any

from tunefleet.dashboard import views
from tunefleet.dashboard.live import Follower
from tunefleet.dashboard.state import Kept, StudyResults
from tunefleet_contract.messages import StudyRegistered, TrialResult, TrialsStarted
from tunefleet_runtime.records import StudyRecord
from tunefleet_runtime.store.memory import MemoryStore
from tunefleet_runtime.validation import parse_spec


def _study(store: MemoryStore, n: int) -> StudyRecord:
    spec = parse_spec(
        {
            "name": f"dash-state-{n}",
            "dataset": "iris",
            "search": {
                "noop": {"random": {"n_trials": n, "seed": 0, "space": {"x": {"uniform": [0, 1]}}}}
            },
        }
    )
    now = time.time()
    study_id = spec.study_id()
    store.write_events(
        [
            StudyRegistered(
                study_id=study_id, spec=spec, n_trials=n, submitted_at=now, published_at=now
            )
        ]
    )
    record = store.study(study_id)
    assert record is not None
    return record


def _result(study_id: str, i: int, status: str, score: float, rng: random.Random) -> TrialResult:
    return TrialResult(
        study_id=study_id,
        trial_id=f"{i:024x}",
        library=rng.choice(["xgboost", "lightgbm"]),
        params={"x": rng.random()},
        status=status,  # type: ignore[arg-type]
        score=score if status == "done" else None,
        error=None if status == "done" else "RuntimeError: planned failure",
        worker=f"w{i % 4}",
        finished_at=1000.0 + rng.random() * 100,
    )


def _views(state: StudyResults) -> dict[str, Any]:
    """Everything the study's page shows of the results, as the state computes it."""
    progress = state.progress()
    return {
        "ids": [r.trial_id for r in state.ranked()],
        "best": state.best_so_far(),
        "leaderboard": state.leaderboard(),
        "failures": state.failures(),
        "tables": [state.table(query) for query in QUERIES],
        "progress": (progress.done, progress.failed, progress.running, progress.best_score),
    }


def _from_all(state: StudyResults) -> dict[str, Any]:
    """The same from all the results at once, by `views` alone (what a full read computes)."""
    every = list(state.records.values())
    progress = state.progress()
    return {
        "ids": [r.trial_id for r in state.ranked()],
        "best": views.best_so_far(every),
        "leaderboard": views.leaderboard(every),
        "failures": views.failures(every),
        "tables": [views.trial_table(state.ranked(), query) for query in QUERIES],
        "progress": (progress.done, progress.failed, progress.running, progress.best_score),
    }


QUERIES = [
    views.TrialQuery(),  # the first view: best first
    views.TrialQuery(offset=40, limit=30),
    views.TrialQuery(sort="finished_at", limit=200),
    views.TrialQuery(status="failed", sort="score", descending=False),
]


def test_kept_current_by_small_reads_it_equals_a_full_read() -> None:
    rng = random.Random(7)
    store = MemoryStore()
    record = _study(store, 400)
    store.write_events(
        [
            TrialsStarted(
                study_id=record.study_id,
                trial_ids=[f"{i:024x}" for i in range(300)],
                worker="w0",
                attempt=1,
                started_at=1.0,
            )
        ]
    )
    kept = StudyResults(record)
    kept.load(store)
    assert len(kept) == 0
    failed_first: list[int] = []
    for step in range(12):
        batch = []
        for i in range(step * 25, step * 25 + 25):
            status = "failed" if rng.random() < 0.2 else "done"
            if status == "failed":
                failed_first.append(i)
            batch.append(_result(record.study_id, i, status, rng.random(), rng))
        store.write_events(batch)
        again: list[int] = []
        if step % 3 == 0:
            # A done result after a failed one replaces it (the store's merge rule).
            again = failed_first[: step + 1]  # each announced by its own event
            store.write_events(
                [_result(record.study_id, i, "done", 0.99 - i / 1000, rng) for i in again]
            )
        if step % 2:
            assert kept.announced(store, [r.trial_id for r in batch] + [f"{i:024x}" for i in again])
        else:
            assert kept.catch_up(store)
        whole = StudyResults(record)
        whole.load(store)
        assert _views(kept) == _views(whole) == _from_all(whole), f"after step {step}"
    assert len(kept) == 300 and kept.progress().running == 0
    assert len(kept.starts()) == len(store.starts(record.study_id, 0)) == 300
    assert not kept.catch_up(store)  # nothing new: nothing changes
    # Starts no event told of (the broker away) are read again by the catch-up.
    late = TrialsStarted(
        study_id=record.study_id,
        trial_ids=[f"{i:024x}" for i in range(300, 310)],
        worker="w9",
        attempt=1,
        started_at=2.0,
    )
    store.write_events([late])
    assert kept.catch_up(store) and kept.progress().running == 10
    version = kept.version
    assert not kept.announced(store, [f"{0:024x}"]) and kept.version == version


def test_results_of_another_revision_or_study_are_not_taken() -> None:
    store = MemoryStore()
    record = _study(store, 4)
    rng = random.Random(1)
    kept = StudyResults(record)
    kept.load(store)
    other = _result("another-study-0000", 0, "done", 0.5, rng)
    assert not kept.apply([store_record(other, revision=0)])
    assert not kept.apply([store_record(_result(record.study_id, 1, "done", 0.5, rng), revision=1)])
    assert len(kept) == 0


def store_record(result: TrialResult, revision: int) -> Any:
    from tunefleet_runtime.store.documents import result_doc, trial_record

    return trial_record({**result_doc(result, time.time()), "revision": revision})


def test_kept_studies_are_bounded_and_read_once() -> None:
    store = MemoryStore()
    rng = random.Random(2)
    records = []
    for n in (30, 31, 32):
        record = _study(store, n)
        ids = range(n * 1000, n * 1000 + n)  # trial ids of its own
        store.write_events([_result(record.study_id, i, "done", rng.random(), rng) for i in ids])
        records.append(record)
    kept = Kept(store, max_results=70)
    first = kept.get(records[0])
    assert kept.get(records[0]) is first  # kept: not read again
    kept.get(records[1])
    kept.get(records[2])  # 93 results > 70: the least recently used goes
    assert kept.peek(records[0].study_id) is None
    assert kept.stats() == {"studies": 2, "results": 63}


def test_the_follower_looks_up_announced_results_by_id() -> None:
    store = MemoryStore()
    record = _study(store, 5)
    kept = Kept(store)
    follower = Follower(store, full_every_s=3600, kept=kept, background=False)
    follower.events_live = True
    assert follower.poll() == [record.study_id]
    kept.get(record)
    rng = random.Random(3)
    store.write_events([_result(record.study_id, 0, "done", 0.5, rng)])
    assert follower.poll() == []  # not announced, no full pass: not read
    follower.note(record.study_id, f"{1:024x}")  # announced before the store has it
    assert follower.poll() == []
    store.write_events([_result(record.study_id, 1, "done", 0.6, rng)])
    assert follower.poll() == [record.study_id]
    assert follower.token(record.study_id).results == 1  # type: ignore[union-attr]
    assert follower.poll(full=True) == [record.study_id]  # the catch-up finds the other
    assert follower.token(record.study_id).results == 2  # type: ignore[union-attr]
    # A replaced result changes no count, yet the page is told.
    store.write_events([_result(record.study_id, 2, "failed", 0.0, rng)])
    follower.note(record.study_id, f"{2:024x}")
    assert follower.poll() == [record.study_id]
    store.write_events([_result(record.study_id, 2, "done", 0.7, rng)])
    follower.note(record.study_id, f"{2:024x}")
    assert follower.poll() == [record.study_id]
    state = kept.peek(record.study_id)
    assert state is not None and state.records[f"{2:024x}"].status == "done"


def test_a_reported_result_is_shown_without_a_read_as_the_store_keeps_it() -> None:
    """A result on the events stream reaches a kept study with no read of the store (a lookup
    by id scans on FerretDB), and what is kept is what the store keeps of the same messages."""
    store = MemoryStore()
    record = _study(store, 6)
    kept = Kept(store)
    follower = Follower(store, full_every_s=3600, kept=kept, background=False)
    follower.events_live = True
    kept.get(record)
    assert follower.poll() == [record.study_id]
    rng = random.Random(5)
    first = _result(record.study_id, 0, "failed", 0.0, rng)
    beats = _result(record.study_id, 0, "done", 0.8, rng)  # a done result beats a failed one
    again = _result(record.study_id, 0, "done", 0.1, rng)  # a later duplicate: the first stands
    other = _result(record.study_id, 1, "done", 0.4, rng)
    older = _result(record.study_id, 2, "done", 0.9, rng).model_copy(update={"revision": 1})
    for event in (first, beats, again, other, older):
        follower._event(event.encode())  # the listener's path for one message
    assert follower.poll() == [record.study_id]
    state = kept.peek(record.study_id)
    assert state is not None
    assert follower.token(record.study_id).results == 2  # type: ignore[union-attr]
    assert state.records[f"{0:024x}"].score == 0.8
    for event in (first, beats, again, other):  # the collector stores the same messages
        store.write_events([event])
    stored = {r.trial_id: r for r in store.results(record.study_id, record.revision)}
    assert stored == state.records
    assert follower.poll(full=True) == []  # the catch-up finds nothing the events did not bring


def test_paced_work_is_redone_after_a_change_only_when_its_share_allows() -> None:
    store = MemoryStore()
    record = _study(store, 3)
    kept = StudyResults(record)
    rng = random.Random(4)
    calls: list[int] = []

    def compute() -> int:
        calls.append(kept.version)
        time.sleep(0.01)  # it takes a while
        return len(calls)

    assert kept.paced("figures", compute) == 1
    assert kept.paced("figures", compute) == 1  # unchanged: not computed again
    kept.apply([store_record(_result(record.study_id, 0, "done", 0.5, rng), revision=0)])
    # Changed, and a share of all the time since it began allows it (it has ended since).
    assert kept.paced("figures", compute, share=1.0) == 2
    kept.apply([store_record(_result(record.study_id, 1, "done", 0.6, rng), revision=0)])
    # A share so small that the time since is never enough: the last one is served.
    assert kept.paced("figures", compute, share=1e-9) == 2
    assert calls == [0, 1]
