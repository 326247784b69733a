"""What a store must do, run against every backend: MongoStore on a real MongoDB-protocol server
and the in-memory store. Writes go through `Store.write_events` only (as the collector and the
planner write), reads through the typed reads only: a new backend passes this suite or is not
one. The merge and revision rules are the ones a resume relies on (docs/usage.md)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tunefleet_contract.documents import DocumentError
from tunefleet_contract.messages import (
    Event,
    FoldCheckpoint,
    FoldScore,
    ModelStored,
    PlannedSpec,
    RoundCheckpoint,
    StudyCancelled,
    StudyRegistered,
    StudyResumed,
    TrialResult,
    TrialSpec,
    TrialsPlanned,
    TrialsStarted,
)
from tunefleet_contract.spec import StudySpec
from tunefleet_publisher.planner import expand
from tunefleet_runtime.store import PlanIncompleteError, Store, study_status
from tunefleet_runtime.store.memory import MemoryStore
from tunefleet_runtime.store.mongo import MongoStore, connect_store
from tunefleet_runtime.validation import parse_spec

STUDY = "fix-0123456789ab"


@pytest.fixture(params=["memory", "mongo"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    found = MongoStore(connect_store(request.getfixturevalue("settings")))
    found.prepare()
    found.prepare()  # idempotent: every collector runs it at start
    yield found


def spec(scores: list[float], name: str = "fix") -> StudySpec:
    return parse_spec(
        {"name": name, "dataset": "iris", "search": {"noop": {"grid": {"score": scores}}}}
    )


def registered(
    study: StudySpec, revision: int, study_id: str = STUDY, **fields: Any
) -> list[Event]:
    """What the planner publishes for a revision: its plan, then the registration."""
    trials = list(expand(study, study_id))
    return [
        TrialsPlanned(study_id=study_id, revision=revision, first=0, trials=trials),
        StudyRegistered(
            study_id=study_id,
            spec=study,
            n_trials=len(trials),
            submitted_at=fields.pop("submitted_at", 1.0),
            published_at=time.time(),
            revision=revision,
            **fields,
        ),
    ]


def result(trial: TrialSpec, revision: int, status: str = "done", **fields: Any) -> TrialResult:
    return TrialResult.model_validate(
        {
            "study_id": STUDY,
            "trial_id": trial.trial_id,
            "library": trial.library,
            "params": trial.params,
            "status": status,
            "score": trial.params["score"] if status == "done" else None,
            "reason": None if status == "done" else "rejected",
            "finished_at": time.time(),
            "revision": revision,
            **fields,
        }
    )


def by_score(study: StudySpec) -> dict[Any, TrialSpec]:
    return {t.params["score"]: t for t in expand(study, STUDY)}


def stored(store: Store, trial: TrialSpec) -> tuple[str, int, str]:
    detail = store.trial(trial.trial_id)
    assert detail is not None and detail.result is not None
    return detail.result.status, detail.result.revision, detail.result.worker


# -- revisions and merges ---------------------------------------------------------------------


def test_a_fixed_spec_keeps_shared_results_and_hides_the_dropped_ones(store: Store) -> None:
    old_spec, new_spec = spec([0.1, 0.2, 9.0]), spec([0.1, 0.2, 0.5])
    old, new = by_score(old_spec), by_score(new_spec)
    store.write_events(registered(old_spec, 0))
    store.write_events([result(old[0.1], 0), result(old[0.2], 0, "failed"), result(old[9.0], 0)])
    assert store.leaderboard(STUDY, 0, limit=1)[0].params["score"] == 9.0

    store.write_events(registered(new_spec, 1, published=1, kept=2, kept_failed=1, superseded=1))
    study = store.study(STUDY)
    assert study is not None and (study.revision, study.n_trials) == (1, 3)
    assert study.spec.search["noop"].grid == {"score": [0.1, 0.2, 0.5]}
    assert (study.published, study.kept, study.kept_failed, study.superseded) == (1, 2, 1, 1)
    status = study_status(store, STUDY)
    assert status is not None
    assert (status.done, status.failed, status.queued, status.best_score) == (1, 1, 1, 0.1)
    assert {r.trial_id for r in store.results(STUDY, 1)} == {
        new[0.1].trial_id,
        new[0.2].trial_id,
    }
    dropped = store.trial(old[9.0].trial_id)
    assert dropped is not None and dropped.superseded and dropped.revision == 0
    # A late result of the dropped trial (it was running) stays out of sight.
    store.write_events([result(old[9.0], 0, worker="late")])
    store.write_events(
        [
            TrialsStarted(
                study_id=STUDY,
                trial_ids=[old[9.0].trial_id],
                worker="late",
                attempt=1,
                started_at=1.0,
            )
        ]
    )
    status = study_status(store, STUDY)
    assert status is not None and status.running == 0 and status.best_score == 0.1
    # The new trial, and a redelivered copy of the kept failure that now succeeds.
    store.write_events([result(new[0.5], 1), result(new[0.2], 1)])
    status = study_status(store, STUDY)
    assert status is not None and status.complete
    assert (status.done, status.failed, status.best_score) == (3, 0, 0.5)

    # Registering revision 1 again (a redelivery) changes nothing; an older one neither.
    store.write_events([*registered(new_spec, 1), *registered(old_spec, 0)])
    assert store.study(STUDY).revision == 1  # type: ignore[union-attr]
    assert study_status(store, STUDY).done == 3  # type: ignore[union-attr]


def test_rerun_failed_leaves_failures_behind_until_they_run_again(store: Store) -> None:
    study_spec = spec([0.1, 0.2])
    trials = by_score(study_spec)
    store.write_events(registered(study_spec, 0))
    store.write_events([result(trials[0.1], 0), result(trials[0.2], 0, "failed")])
    store.write_events(registered(study_spec, 1, rerun_failed=True))
    status = study_status(store, STUDY)
    assert status is not None and (status.done, status.failed, status.queued) == (1, 0, 1)
    # It fails again: the newer failure replaces the older one.
    store.write_events([result(trials[0.2], 1, "failed", error="still broken")])
    detail = store.trial(trials[0.2].trial_id)
    assert detail is not None and detail.result is not None
    assert (detail.revision, detail.result.error) == (1, "still broken")


def test_a_second_result_merges_done_first_then_the_later_revision(store: Store) -> None:
    trial = next(iter(by_score(spec([0.3])).values()))
    store.write_events(registered(spec([0.3]), 0))
    store.write_events([result(trial, 2, "failed", worker="a")])
    store.write_events([result(trial, 1, "failed", worker="b")])  # older failure: ignored
    assert stored(store, trial) == ("failed", 2, "a")
    store.write_events([result(trial, 1, worker="c")])  # done wins, in the later revision
    assert stored(store, trial) == ("done", 2, "c")
    store.write_events([result(trial, 3, "failed", worker="d")])  # a failure never beats done
    assert stored(store, trial) == ("done", 3, "c")
    store.write_events([result(trial, 3, worker="e")])  # the same again: the first one stays
    assert stored(store, trial) == ("done", 3, "c")
    # Within one batch the first result of a trial is the one written.
    other = next(iter(by_score(spec([0.4])).values()))
    store.write_events([result(other, 0, worker="f"), result(other, 0, worker="g")])
    assert stored(store, other) == ("done", 0, "f")


def test_a_revision_waits_for_its_whole_plan(store: Store) -> None:
    # Another collector may still hold part of the plan: registering the revision must not
    # decide what it keeps from a partial one (that would hide kept results as superseded).
    study_spec = spec([0.1, 0.2])
    store.write_events(registered(study_spec, 0))
    plan, registration = registered(study_spec, 1)
    assert isinstance(plan, TrialsPlanned)
    store.write_events([plan.model_copy(update={"trials": plan.trials[:1]})])
    with pytest.raises(PlanIncompleteError, match="1 of 2 planned trials"):
        store.write_events([registration])
    assert store.study(STUDY).revision == 0  # type: ignore[union-attr]
    store.write_events([plan, registration])  # the rest arrives: the revision goes through
    assert store.study(STUDY).revision == 1  # type: ignore[union-attr]
    assert [(t.trial_id, t.revision) for t in store.plan(STUDY)] == [
        (t.trial_id, 1) for t in plan.trials
    ]
    assert store.planned_trials(STUDY, 1) == [t.trial_id for t in plan.trials]


# -- the plan -----------------------------------------------------------------------------------


def test_the_plan_keeps_each_decisions_search_rung_and_cause(store: Store) -> None:
    ids = [f"{n:024x}" for n in range(1, 5)]
    trials = [
        PlannedSpec(trial_id=ids[0], library="noop", params={"score": 0.1}, search="grid"),
        PlannedSpec(trial_id=ids[1], library="noop", params={"x": 1}, search="asha", rung=0),
        PlannedSpec(trial_id=ids[2], library="noop", params={"x": 2}),  # a plan from before
    ]
    store.write_events([TrialsPlanned(study_id=STUDY, first=0, trials=trials)])
    later = PlannedSpec(trial_id=ids[3], library="noop", params={"x": 1}, search="asha", rung=1)
    store.write_events([TrialsPlanned(study_id=STUDY, first=3, trials=[later], after=ids[1])])
    plan = store.plan(STUDY)
    assert [(t.trial_id, t.search, t.rung, t.after) for t in plan] == [
        (ids[0], "grid", None, None),
        (ids[1], "asha", 0, None),
        (ids[2], None, None, None),
        (ids[3], "asha", 1, ids[1]),
    ]
    assert [t.trial_id for t in store.plan(STUDY, [ids[3], ids[0]])] == [ids[0], ids[3]]
    # A later revision that plans a trial again moves it there; what decided it stands.
    again = PlannedSpec(trial_id=ids[1], library="noop", params={"x": 1}, search="random")
    count = store.write_events([TrialsPlanned(study_id=STUDY, revision=2, first=0, trials=[again])])
    assert count["planned"] == 0
    moved = store.plan(STUDY, [ids[1]])
    assert [(t.revision, t.search, t.rung) for t in moved] == [(2, "asha", 0)]
    assert store.planned_trials(STUDY, 2) == [ids[1]]


def test_a_batch_written_twice_is_written_once(store: Store) -> None:
    study_spec = spec([0.1, 0.2])
    trials = by_score(study_spec)
    start = TrialsStarted(
        study_id=STUDY, trial_ids=[trials[0.1].trial_id], worker="w", attempt=1, started_at=1.0
    )
    batch = [*registered(study_spec, 0), start, result(trials[0.1], 0)]
    first = store.write_events(batch)
    assert (first["planned"], first["studies"], first["starts"], first["trials"]) == (2, 1, 1, 1)
    again = store.write_events(batch)
    assert (again["planned"], again["studies"], again["starts"], again["trials"]) == (0, 0, 0, 0)
    assert len(store.results(STUDY, 0)) == 1 and len(store.starts(STUDY, 0)) == 1


# -- reading ------------------------------------------------------------------------------------


def test_reads_select_order_and_limit(store: Store) -> None:
    study_spec = parse_spec(
        {
            "name": "fix",
            "dataset": "iris",
            "search": {
                "noop": {"grid": {"score": [0.3, 0.9, 0.5]}},
                "xgboost": {"grid": {"max_depth": [2]}},
            },
        }
    )
    trials = list(expand(study_spec, STUDY))
    store.write_events(registered(study_spec, 0, submitted_at=5.0))
    store.write_events(registered(spec([0.1], "older"), 0, "older-0123456789ab", submitted_at=1.0))
    noop = [t for t in trials if t.library == "noop"]
    xgb = next(t for t in trials if t.library == "xgboost")
    at = time.time()
    store.write_events(
        [
            *(result(t, 0, finished_at=at + i) for i, t in enumerate(noop)),
            result(xgb, 0, "failed", finished_at=at - 10),
        ]
    )
    assert [s.study_id for s in store.studies()] == [STUDY, "older-0123456789ab"]
    assert [s.study_id for s in store.studies(limit=1)] == [STUDY]
    assert [r.score for r in store.results(STUDY, 0)] == [0.9, 0.5, 0.3, None]
    assert [r.score for r in store.leaderboard(STUDY, 0, limit=2)] == [0.9, 0.5]
    assert store.leaderboard(STUDY, 0, limit=5, library="xgboost") == []
    assert store.results(STUDY, 1) == []
    recent, first = store.finished_since(STUDY, 0, at + 0.5)
    assert recent == 2 and first == pytest.approx(at - 10)
    states = store.result_states(STUDY)
    assert states[xgb.trial_id].status == "failed" and states[noop[1].trial_id].score == 0.9
    assert store.planned_trials(STUDY, 0) == [t.trial_id for t in trials]


def test_results_since_a_moment_and_by_id_are_what_changed(store: Store) -> None:
    """The dashboard's reads of a study it keeps: what was stored at or after a moment (a
    result replaced or moved into the revision is stored anew), and results by id."""
    study_spec = spec([0.1, 0.2, 0.3])
    one, two, three = by_score(study_spec).values()
    store.write_events(registered(study_spec, 0))
    assert store.results_since(STUDY, 0, 0.0) == ([], None)
    store.write_events([result(one, 0), result(two, 0, "failed")])
    everything, latest = store.results_since(STUDY, 0, 0.0)
    assert {r.trial_id for r in everything} == {one.trial_id, two.trial_id}
    assert latest is not None
    time.sleep(0.05)  # the store's clock: a later batch is stored later
    store.write_events([result(three, 0), result(two, 0)])  # a new one; done replaces failed
    since, newer = store.results_since(STUDY, 0, latest + 0.01)
    assert sorted((r.trial_id, r.status) for r in since) == sorted(
        [(three.trial_id, "done"), (two.trial_id, "done")]
    )
    assert newer is not None and newer > latest
    assert store.results_since(STUDY, 0, newer + 1.0) == ([], None)
    assert store.results_since(STUDY, 1, 0.0) == ([], None)  # another revision: none
    # A result moved into a later revision (a failure never beats done) is stored anew there.
    time.sleep(0.05)
    store.write_events([result(one, 1, "failed")])
    moved, _ = store.results_since(STUDY, 1, newer + 0.01)
    assert [(r.trial_id, r.status, r.revision) for r in moved] == [(one.trial_id, "done", 1)]
    # By id: only those in the revision asked for (and of the study), whatever else is asked.
    found = store.results_of(STUDY, 0, [two.trial_id, three.trial_id, one.trial_id, "f" * 24])
    assert sorted(r.trial_id for r in found) == sorted([two.trial_id, three.trial_id])
    assert store.results_of("other-0123456789ab", 0, [two.trial_id]) == []
    assert store.results_of(STUDY, 0, []) == []


def test_a_trial_by_its_id_a_prefix_or_its_start_alone(store: Store) -> None:
    study_spec = spec([0.1, 0.2])
    one, two = by_score(study_spec).values()
    store.write_events(registered(study_spec, 0))
    starts = [
        TrialsStarted(study_id=STUDY, trial_ids=[one.trial_id], worker=w, attempt=a, started_at=a)
        for w, a in (("w2", 2), ("w1", 1))
    ]
    store.write_events([*starts, result(one, 0, attempts=2)])
    store.write_events(
        [
            TrialsStarted(
                study_id=STUDY, trial_ids=[two.trial_id], worker="w3", attempt=1, started_at=3.0
            )
        ]
    )
    detail = store.trial(one.trial_id[:8])
    assert detail is not None and detail.trial_id == one.trial_id and detail.status == "done"
    assert [(s.attempt, s.worker) for s in detail.starts] == [(1, "w1"), (2, "w2")]
    running = store.trial(two.trial_id)
    assert running is not None and running.status == "running" and running.result is None
    assert running.study_id == STUDY and not running.superseded
    assert store.trial("f" * 24) is None
    with pytest.raises(ValueError, match="at least 6 hex digits"):
        store.trial("abc")
    twins = ["abcdef" + "0" * 18, "abcdef" + "1" * 18]
    store.write_events(
        [TrialsStarted(study_id=STUDY, trial_ids=twins, worker="w", attempt=1, started_at=4.0)]
    )
    with pytest.raises(ValueError, match="several trial ids"):
        store.trial("abcdef")
    assert store.trial("abcdef1").trial_id == twins[1]  # type: ignore[union-attr]


def test_cancel_then_resume(store: Store) -> None:
    store.write_events(registered(spec([0.1]), 0))
    store.write_events(
        [StudyCancelled(study_id=STUDY, cancelled_at=2.0, by="me@here", reason="enough")]
    )
    study = store.study(STUDY)
    assert study is not None and study.cancelled
    assert (study.cancelled_by, study.cancel_reason) == ("me@here", "enough")
    store.write_events([StudyResumed(study_id=STUDY, resumed_at=3.0, by="me@here", revision=1)])
    study = store.study(STUDY)
    assert study is not None and not study.cancelled and study.cancel_reason is None
    # A cancel and a resume in one batch apply in arrival order, after the registration.
    store.write_events(
        [
            *registered(spec([0.2], "other"), 0, "other-0123456789ab"),
            StudyCancelled(study_id="other-0123456789ab", cancelled_at=4.0, by="me"),
        ]
    )
    assert store.study("other-0123456789ab").cancelled  # type: ignore[union-attr]


def model(status: str, stored_at: float = 0.0, **fields: Any) -> ModelStored:
    return ModelStored.model_validate(
        {
            "study_id": STUDY,
            "trial_id": fields.pop("trial_id", "a" * 24),
            "library": "xgboost",
            "params": {"max_depth": 2},
            "dataset": {"kind": "builtin", "name": "iris"},
            "task": "classification",
            "status": status,
            "finished_at": stored_at,
            **fields,
        }
    )


def test_a_stored_model_is_never_replaced_by_a_failed_refit(store: Store) -> None:
    stored_model = model("done", sha256="b" * 64, format="ubj", size=10)
    assert store.write_events([model("failed", error="oom")])["models"] == 1
    assert store.write_events([stored_model])["models"] == 1  # a model replaces a failure
    assert store.write_events([model("failed", error="again")])["models"] == 0
    found = store.models(STUDY, "a" * 24)
    assert [(m.status, m.sha256) for m in found] == [("done", "b" * 64)]
    time.sleep(0.01)  # stored later: listed first
    store.write_events([model("failed", trial_id="c" * 24, error="x")])
    assert [m.trial_id for m in store.models(STUDY)] == ["c" * 24, "a" * 24]
    assert store.models("another-study") == []


def test_model_blobs_are_the_hashes_stored_models_name(store: Store) -> None:
    assert store.model_blobs() == set()
    store.write_events(
        [
            model("done", sha256="b" * 64, format="cbm", size=10),
            model("done", trial_id="c" * 24, sha256="d" * 64, format="ubj", size=10),
            model("failed", trial_id="e" * 24, error="oom"),
        ]
    )
    assert store.model_blobs() == {"b" * 64, "d" * 64}
    # A refit on new data replaces the document: the blob it named is no longer named.
    store.write_events([model("done", sha256="f" * 64, format="cbm", size=11)])
    assert store.model_blobs() == {"f" * 64, "d" * 64}


def test_studies_using_an_uploaded_dataset(store: Store) -> None:
    sha = "d" * 64
    uploaded = parse_spec(
        {
            "name": "up",
            "dataset": {"kind": "upload", "target": "y", "sha256": sha, "format": "csv"},
            "search": {"noop": {"grid": {"score": [0.1]}}},
        }
    )
    store.write_events(registered(uploaded, 0, "up-0123456789ab"))
    store.write_events(registered(spec([0.1]), 0))
    assert store.studies_using(sha) == ["up-0123456789ab"]
    assert store.studies_using("e" * 64) == []


# -- what no store has to keep --------------------------------------------------------------------


def test_no_nan_or_infinity_reaches_a_store(store: Store) -> None:
    trial = next(iter(by_score(spec([0.5])).values()))
    store.write_events(registered(spec([0.5]), 0))
    broken = result(trial, 0, score_std=math.nan, fold_scores=[math.inf, 0.5])
    store.write_events([broken])
    detail = store.trial(trial.trial_id)
    assert detail is not None and detail.result is not None
    assert (detail.result.score_std, detail.result.fold_scores) == (None, [None, 0.5])
    store.probe_write()  # the store writes as it did before


@pytest.mark.parametrize("key", ["a.b", "$set"])
def test_no_dotted_or_operator_key_is_a_message(key: str) -> None:
    # Refused by the contract before any store sees it: every backend may rely on that.
    with pytest.raises((DocumentError, ValueError)):
        TrialSpec(trial_id="a" * 24, library="noop", params={key: 1})


def test_finished_curves_are_the_most_recent_that_ran_to_their_own_end(store: Store) -> None:
    study = spec([0.1, 0.2, 0.3, 0.4, 0.5])
    trials = list(expand(study, STUDY))
    store.write_events(registered(study, 0))

    def curve(last: float, **stop: Any) -> dict[str, Any]:
        return {
            "metric": "auc",
            "greater_is_better": True,
            "rounds": 2,
            "max_rounds": 10,
            "best_round": 1,
            "stop_round": 3,
            "rounds_trained": 3,
            "curve_rounds": [1, 2, 3],
            "curve_mean": [0.5, 0.6, last],
            "curve_std": [0.0, 0.0, 0.0],
            **stop,
        }

    median = {"stopped_by": "median", "median_trials": 2}
    store.write_events(
        [
            result(trial, 0, finished_at=float(i), early_stopping=curve(i / 10, **stop))
            for i, (trial, stop) in enumerate(
                zip(trials, [{}, {}, {}, median, median], strict=True), 1
            )
        ]
    )
    # The median rule's own stops are left out; of the rest, the most recently finished.
    found = store.finished_curves(STUDY, 0, "noop", limit=2)
    assert [f["curve_mean"][-1] for f in found] == [0.3, 0.2]
    assert len(store.finished_curves(STUDY, 0, "noop")) == 3
    assert store.finished_curves(STUDY, 0, "xgboost") == []


def test_a_turn_says_who_took_it_before(store: Store) -> None:
    assert store.take_turn("planner", "a") is None  # the first ever
    assert store.take_turn("planner", "a") == "a"  # no one else meanwhile
    assert store.take_turn("planner", "b") == "a"  # b takes over: what a holds is stale
    assert store.take_turn("other", "a") is None  # roles are apart
    assert store.take_turn("planner", "a") == "b"


# -- fold checkpoints and preemptions ---------------------------------------------------------


def checkpoint(
    trials: list[TrialSpec], fold: int, score: float | None, revision: int = 0, worker: str = "w1"
) -> FoldCheckpoint:
    return FoldCheckpoint(
        study_id=STUDY,
        revision=revision,
        fold=fold,
        folds=3,
        trials=[
            FoldScore(trial_id=t.trial_id, score=score, fit_time_s=1.5, score_time_s=0.25)
            for t in trials
        ],
        worker=worker,
        finished_at=time.time(),
    )


def test_fold_checkpoints_are_kept_once_per_trial_revision_and_fold(store: Store) -> None:
    study = spec([0.1, 0.2, 0.3])
    one, two, other = expand(study, STUDY)
    store.write_events(registered(study, 0))
    # A family's fold (two trials, one fit), written twice in one batch and again in another:
    # the first record of a fold stands.
    first = checkpoint([one, two], 0, 0.8125)
    store.write_events([first, checkpoint([one, two], 0, 0.5, worker="w2"), first])
    store.write_events([checkpoint([one], 1, None), checkpoint([one], 0, 0.25, revision=1)])

    found = store.fold_checkpoints(STUDY, 0, [one.trial_id, two.trial_id, other.trial_id], 3)
    by_key = {(f.trial_id, f.fold): f for f in found}
    assert set(by_key) == {(one.trial_id, 0), (two.trial_id, 0), (one.trial_id, 1)}
    kept = by_key[(one.trial_id, 0)]
    assert (kept.score, kept.worker, kept.revision, kept.folds) == (0.8125, "w1", 0, 3)
    assert (kept.fit_time_s, kept.score_time_s) == (1.5, 0.25)
    assert by_key[(one.trial_id, 1)].score is None  # a fold score that was not finite
    # Another revision, another study, another number of folds: none of these.
    assert [f.score for f in store.fold_checkpoints(STUDY, 1, [one.trial_id], 3)] == [0.25]
    assert store.fold_checkpoints("other-study", 0, [one.trial_id], 3) == []
    assert store.fold_checkpoints(STUDY, 0, [one.trial_id], 5) == []
    assert store.fold_checkpoints(STUDY, 0, [], 3) == []


def cut(trial: TrialSpec, fold: int, at: int, revision: int = 0, worker: str = "w1") -> Any:
    return RoundCheckpoint(
        study_id=STUDY,
        revision=revision,
        trial_id=trial.trial_id,
        library="xgboost",
        fold=fold,
        folds=3,
        round=at,
        rounds=100,
        sha256=f"{at:064x}",
        format="ubj",
        size=at * 10,
        worker=worker,
        saved_at=time.time(),
    )


def test_round_checkpoints_are_kept_once_per_trial_revision_fold_and_round(store: Store) -> None:
    study = spec([0.1, 0.2, 0.3])
    one, two, _ = expand(study, STUDY)
    store.write_events(registered(study, 0))
    first = cut(one, 1, 40)
    store.write_events([first, cut(one, 1, 40, worker="w2"), first])  # the first stands
    store.write_events([cut(one, 1, 70), cut(two, 0, 5), cut(one, 1, 9, revision=1)])

    found = store.round_checkpoints(STUDY, 0, [one.trial_id, two.trial_id], 3)
    by_key = {(r.trial_id, r.fold, r.round): r for r in found}
    assert set(by_key) == {(one.trial_id, 1, 40), (one.trial_id, 1, 70), (two.trial_id, 0, 5)}
    kept = by_key[(one.trial_id, 1, 40)]
    assert (kept.worker, kept.rounds, kept.sha256, kept.format, kept.size) == (
        "w1",
        100,
        f"{40:064x}",
        "ubj",
        400,
    )
    # Another revision, another study, another number of folds: none of these.
    assert [r.round for r in store.round_checkpoints(STUDY, 1, [one.trial_id], 3)] == [9]
    assert store.round_checkpoints("other-study", 0, [one.trial_id], 3) == []
    assert store.round_checkpoints(STUDY, 0, [one.trial_id], 5) == []
    assert store.round_checkpoints(STUDY, 0, [], 3) == []


def test_preemptions_are_counted_apart_from_redeliveries(store: Store) -> None:
    study = spec([0.1, 0.2])
    calm, stormy = by_score(study).values()

    def started(trial: TrialSpec, attempt: int, preemptions: int | None = None) -> TrialsStarted:
        return TrialsStarted(
            study_id=STUDY,
            trial_ids=[trial.trial_id],
            worker=f"w{attempt}",
            attempt=attempt,
            started_at=float(attempt),
            preemptions=preemptions,
        )

    store.write_events(registered(study, 0))
    # One trial redelivered once by the broker (a crash); the other handed back three times
    # by stopped workers, then redelivered once.
    store.write_events([started(calm, 1), started(calm, 2)])
    store.write_events([started(stormy, a, p or None) for a, p in ((1, 0), (2, 1), (3, 2), (4, 3))])
    store.write_events([started(stormy, 5, 3), result(stormy, 0, attempts=5)])
    status = study_status(store, STUDY)
    assert status is not None
    assert (status.preemptions, status.preempted) == (3, 1)
    assert (status.redeliveries, status.redelivered) == (2, 2)
    detail = store.trial(stormy.trial_id)
    assert detail is not None
    assert [s.preemptions for s in detail.starts] == [0, 1, 2, 3, 3]
