"""The store boundary with the in-memory store: typed records, the one status computation,
and the client's decisions read from the recorded plan."""

from __future__ import annotations

import pytest
from tunefleet.client import Client
from tunefleet_contract.messages import PlannedSpec, TrialResult, TrialsPlanned, TrialsStarted
from tunefleet_runtime.records import StudyRecord, StudyState
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store import study_status
from tunefleet_runtime.store.memory import MemoryStore
from tunefleet_runtime.validation import parse_spec

SPEC = parse_spec({"name": "b", "dataset": "iris", "search": {"noop": {"grid": {"x": [1.0]}}}})
A, B, C = "a" * 24, "ab" + "b" * 22, "c" * 24


def result(tid: str, status: str, score: float | None, worker: str = "w1") -> TrialResult:
    return TrialResult(
        study_id="s",
        trial_id=tid,
        library="noop",
        params={"x": 1.0},
        status=status,  # type: ignore[arg-type]
        score=score,
        metric="accuracy",
        worker=worker,
        finished_at=1.0,
    )


def store_with_plan() -> MemoryStore:
    store = MemoryStore()
    store.put_study(StudyRecord(study_id="s", spec=SPEC, n_trials=3, revision=0, submitted_at=1))
    trials = [PlannedSpec(trial_id=t, library="noop", params={"x": 1.0}) for t in (A, B, C)]
    store.write_events([TrialsPlanned(study_id="s", first=0, trials=trials)])
    return store


def client(store: MemoryStore) -> Client:
    settings = ClientSettings(rabbitmq_url="amqp://u:p@nowhere:1/", mongodb_url="mongodb://x:1")
    return Client(settings, store=store)


def test_status_and_state_come_from_one_computation() -> None:
    store = store_with_plan()
    assert study_status(store, "s").state is StudyState.QUEUED  # type: ignore[union-attr]
    store.write_events(
        [
            TrialsStarted(study_id="s", trial_ids=[A, B], worker="w1", attempt=1, started_at=1),
            TrialsStarted(study_id="s", trial_ids=[A], worker="w2", attempt=2, started_at=2),
            result(A, "done", 0.5, worker="w2"),
        ]
    )
    status = study_status(store, "s")
    assert status is not None and status.state is StudyState.RUNNING
    assert (status.done, status.running, status.queued, status.redelivered) == (1, 1, 1, 1)
    assert (status.workers, status.best_score, status.best_trial_id) == (2, 0.5, A)
    store.write_events([result(B, "failed", None), result(C, "done", 0.7)])
    status = study_status(store, "s")
    assert status is not None and status.state is StudyState.COMPLETE
    assert (status.failed, status.best_trial_id) == (1, C)
    assert study_status(store, "unknown") is None


def test_the_client_reads_the_plan_and_records_not_documents() -> None:
    store = store_with_plan()
    store.write_events([result(A, "done", 0.5), result(B, "failed", None)])
    tf = client(store)
    assert tf.missing_trials("s") == [C]
    store.write_events([result(C, "done", 0.7)])
    # Every planned trial has a result: nothing to resume, and the failure is pointed out.
    nothing = tf.resume("s")
    assert not nothing.published and (nothing.kept, nothing.kept_failed) == (3, 1)
    assert [r.trial_id for r in tf.best("s", 5)] == [C, A]
    assert tf.trials("s")[0].as_dict()["trial_id"] == C
    detail = tf.trial("ab" + "b" * 4)  # a unique prefix is enough
    assert detail is not None and detail.status == "failed" and not detail.superseded
    with pytest.raises(ValueError, match="at least 6 hex digits"):
        tf.trial("ab")
    with pytest.raises(ValueError, match="several trial ids"):
        store.write_events([result("a" * 23 + "b", "done", 0.1)])
        tf.trial("aaaaaa")
