"""Progress counts from events alone (the watcher's pure part)."""

from __future__ import annotations

from tunefleet.progress import _State
from tunefleet_contract.messages import StudyCancelled, StudyResumed, TrialResult, TrialsStarted

A, B, C = "a" * 24, "b" * 24, "c" * 24


def result(tid: str, score: float | None, status: str = "done", attempts: int = 1) -> TrialResult:
    return TrialResult(
        study_id="s",
        trial_id=tid,
        library="noop",
        params={},
        status=status,  # type: ignore[arg-type]
        score=score,
        metric="accuracy",
        attempts=attempts,
        finished_at=0.0,
    )


def started(tids: list[str], attempt: int, worker: str) -> TrialsStarted:
    return TrialsStarted(
        study_id="s", trial_ids=tids, worker=worker, attempt=attempt, started_at=0.0
    )


def test_events_drive_the_counts() -> None:
    state = _State("s", n_trials=3, registered=True)
    state.apply(started([A, B], 1, "w1"))
    state.apply(started([A], 2, "w2"))  # A redelivered after w1 died
    state.apply(result(A, 0.5, attempts=2))
    state.apply(result(A, 0.9))  # a duplicate result: the first one counts, as in the store
    state.apply(result(C, None, status="failed"))
    state.apply(result("d" * 24, 1.0).model_copy(update={"study_id": "other"}))
    p = state.snapshot()
    assert (p.done, p.failed, p.running, p.queued) == (1, 1, 1, 0)
    assert p.redelivered == 1 and p.workers == 2
    assert p.best_score == 0.5 and p.best_trial_id == A and p.metric == "accuracy"
    assert not p.complete  # the store has not confirmed anything yet
    state.apply(result(B, 0.7))
    state.stored = 3
    p = state.snapshot()
    assert p.complete and p.best_score == 0.7 and p.running == 0


def test_cancel_and_resume_events() -> None:
    state = _State("s", n_trials=3, registered=True)
    state.apply(StudyCancelled(study_id="s", cancelled_at=1.0))
    assert state.snapshot().cancelled
    state.apply(StudyResumed(study_id="s", resumed_at=2.0))
    assert not state.snapshot().cancelled


def test_preemptions_are_counted_apart_from_redeliveries_live() -> None:
    state = _State("s", n_trials=2, registered=True)
    state.apply(started([A, B], 1, "w1"))
    # w1 was preempted and handed both back; w2 got them (A alone: B's result was in), and
    # was preempted too; w3 crashed with A in hand, so the broker redelivered it to w4.
    state.apply(result(B, 0.5))
    state.apply(started([A], 2, "w2").model_copy(update={"preemptions": 1}))
    state.apply(started([A], 3, "w3").model_copy(update={"preemptions": 2}))
    state.apply(started([A], 4, "w4").model_copy(update={"preemptions": 2}))
    p = state.snapshot()
    assert (p.preempted, p.preemptions) == (1, 2)
    assert (p.redelivered, p.redeliveries) == (1, 1)  # only w3's crash
    assert p.as_dict()["preemptions"] == 2 and p.running == 1


def test_status_shows_preemptions_apart_from_redeliveries() -> None:
    from rich.console import Console
    from tunefleet.cli.lifecycle import _status_table
    from tunefleet.display import describe

    state = _State("s", n_trials=1, registered=True)
    state.apply(started([A], 1, "w1"))
    state.apply(started([A], 2, "w2").model_copy(update={"preemptions": 1}))
    state.apply(started([A], 3, "w3").model_copy(update={"preemptions": 2}))
    p = state.snapshot()
    console = Console(width=200, record=True)
    console.print(_status_table(p))
    text = console.export_text()
    assert "1 trials handed back, 2 times in all" in text
    assert "0 trials, 0 extra deliveries" in text
    assert "1 preempted" in describe(p) and "redelivered" not in describe(p)
