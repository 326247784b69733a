"""What a resume with a fixed spec keeps: trial ids, the workers' skip rule, live counts."""

from __future__ import annotations

import dataclasses
from typing import Any

from tunefleet.progress import _State
from tunefleet_contract.messages import StudyCancelled, StudyRegistered, StudyResumed, TrialResult
from tunefleet_publisher.planner import expand
from tunefleet_runtime.records import StudyRecord
from tunefleet_runtime.store.memory import MemoryStore
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker.control import StudyControl

BASE: dict[str, Any] = {
    "name": "fix",
    "dataset": "breast_cancer",
    "cv": {"folds": 3, "seed": 1},
    "search": {"xgboost": {"fixed": {"n_estimators": 10}, "grid": {"max_depth": [2, 3, 30]}}},
}


def ids(changes: dict[str, Any], study: str = "fix-1") -> dict[Any, str]:
    """Trial id by max_depth, for the base spec with `changes`, under one study id."""
    spec = parse_spec({**BASE, **changes})
    return {t.params["max_depth"]: t.trial_id for t in expand(spec, study)}


def test_a_search_fix_keeps_the_ids_of_the_trials_it_does_not_touch() -> None:
    before = ids({})
    grid = {"fixed": {"n_estimators": 10}, "grid": {"max_depth": [2, 3, 4]}}
    after = ids({"search": {"xgboost": grid}})
    assert before[2] == after[2] and before[3] == after[3]
    assert after[4] not in before.values()
    # chunk_size decides how trials travel, not what they score.
    assert ids({"chunk_size": 50}) == before


def test_a_scoring_fix_changes_every_trial_id() -> None:
    before = set(ids({}).values())
    for change in (
        {"cv": {"folds": 4, "seed": 1}},
        {"cv": {"folds": 3, "seed": 2}},
        {"dataset": "wine"},
        {"metric": "roc_auc"},
    ):
        assert not before & set(ids(change).values()), change
    # The metric as resolved: naming the default one is the same scoring.
    assert ids({"metric": "accuracy"}) == ids({})


def resumed(revision: int) -> StudyResumed:
    return StudyResumed(study_id="s", resumed_at=1.0, revision=revision)


def test_workers_skip_what_a_cancel_or_a_newer_revision_left_queued() -> None:
    control = StudyControl()
    assert not control.skips("s", 0)
    control.apply(StudyCancelled(study_id="s", cancelled_at=1.0))
    assert control.skips("s", 0) and not control.skips("other", 0)
    control.apply(resumed(2))
    assert not control.skips("s", 2) and not control.skips("s", 3)
    assert control.skips("s", 1) and control.skips("s", 0)
    control.apply(resumed(1))  # the stream replayed from its start: never goes back
    assert control.skips("s", 1)


def result(tid: str, revision: int, score: float = 0.5) -> TrialResult:
    return TrialResult(
        study_id="s",
        trial_id=tid,
        library="noop",
        params={},
        status="done",
        score=score,
        finished_at=0.0,
        revision=revision,
    )


def test_live_counts_follow_the_newest_revision() -> None:
    a, b, c = "a" * 24, "b" * 24, "c" * 24
    state = _State("s", n_trials=2, registered=True)
    state.apply(result(a, 0, score=0.9))
    assert state.snapshot().done == 1 and not state.stale
    # A resume: counts start over, and the store is to be read again for what it kept.
    state.apply(resumed(1))
    assert state.stale and state.revision == 1 and state.snapshot().done == 0
    spec = parse_spec({**BASE, "name": "s"})
    state.apply(
        StudyRegistered(
            study_id="s", spec=spec, n_trials=3, submitted_at=1.0, published_at=1.0, revision=1
        )
    )
    state.apply(result(b, 1, score=0.7))
    state.apply(result(c, 0, score=1.0))  # a late result of the superseded revision
    snapshot = state.snapshot()
    assert (snapshot.n_trials, snapshot.done, snapshot.best_score) == (3, 1, 0.7)


def test_a_larger_random_budget_keeps_the_points_already_drawn() -> None:
    def random_ids(n: int) -> list[str]:
        space = {"max_depth": {"int": [2, 8]}, "learning_rate": {"loguniform": [0.01, 0.3]}}
        search = {"xgboost": {"random": {"n_trials": n, "seed": 3, "space": space}}}
        return [t.trial_id for t in expand(parse_spec({**BASE, "search": search}), "fix-1")]

    small, large = random_ids(5), random_ids(12)
    assert len(set(large)) == 12 and large[:5] == small


def test_a_wait_after_a_resume_does_not_end_on_the_revision_before() -> None:
    store = MemoryStore()
    study = StudyRecord(
        study_id="s",
        spec=parse_spec({**BASE, "name": "s"}),
        n_trials=1,
        revision=0,
        submitted_at=1.0,
    )
    store.put_study(study)
    kept = TrialResult(
        study_id="s",
        trial_id="a" * 24,
        library="noop",
        params={},
        status="done",
        revision=0,
        finished_at=1.0,
        score=0.9,
    )
    store.write_events([kept])
    before = _State("s")
    before.load(store)
    assert before.snapshot().complete  # revision 0, as the store still has it, is complete
    # Waiting on the resume's revision: nothing counts until the collector has recorded it.
    after = _State("s", revision=1)
    after.load(store)
    assert not after.snapshot().registered and not after.snapshot().complete
    store.put_study(dataclasses.replace(study, revision=1))
    store.write_events([kept.model_copy(update={"revision": 1})])  # the resume keeps it
    after.load(store)
    assert after.snapshot().complete and after.snapshot().best_score == 0.9
