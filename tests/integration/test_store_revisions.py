"""The store's side of a resume, against a real MongoDB-protocol server: which results a new
revision keeps, and how a second result of a trial merges with the first."""

from __future__ import annotations

import time
from typing import Any

from tunefleet_contract.messages import (
    Event,
    StudyRegistered,
    TrialResult,
    TrialSpec,
    TrialsPlanned,
    TrialsStarted,
)
from tunefleet_contract.spec import StudySpec
from tunefleet_publisher.planner import expand
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store import (
    MongoStore,
    PlanIncompleteError,
    connect_store,
    study_status,
    write_events,
)
from tunefleet_runtime.validation import parse_spec

STUDY = "fix-0123456789ab"


def spec(scores: list[float]) -> StudySpec:
    return parse_spec(
        {"name": "fix", "dataset": "iris", "search": {"noop": {"grid": {"score": scores}}}}
    )


def registered(study: StudySpec, revision: int, **fields: Any) -> list[Event]:
    """What the planner publishes for a revision: its plan, then the registration."""
    trials = list(expand(study, STUDY))
    return [
        TrialsPlanned(study_id=STUDY, revision=revision, first=0, trials=trials),
        StudyRegistered(
            study_id=STUDY,
            spec=study,
            n_trials=len(trials),
            submitted_at=1.0,
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
            "library": "noop",
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


def test_a_fixed_spec_keeps_shared_results_and_hides_the_dropped_ones(
    settings: ClientSettings,
) -> None:
    db = connect_store(settings)
    old_spec, new_spec = spec([0.1, 0.2, 9.0]), spec([0.1, 0.2, 0.5])
    old, new = by_score(old_spec), by_score(new_spec)
    write_events(db, registered(old_spec, 0))
    write_events(db, [result(old[0.1], 0), result(old[0.2], 0, "failed"), result(old[9.0], 0)])
    assert MongoStore(db).leaderboard(STUDY, 0, limit=1)[0].params["score"] == 9.0

    write_events(db, registered(new_spec, 1))
    study = db.studies.find_one({"_id": STUDY})
    assert study is not None and study["revision"] == 1 and study["n_trials"] == 3
    assert study["spec"]["search"]["noop"]["grid"]["score"] == [0.1, 0.2, 0.5]
    status = study_status(MongoStore(db), STUDY)
    assert status is not None
    assert (status.done, status.failed, status.queued, status.best_score) == (1, 1, 1, 0.1)
    assert {d.trial_id for d in MongoStore(db).results(STUDY, 1)} == {
        new[0.1].trial_id,
        new[0.2].trial_id,
    }
    # A late result of the dropped trial (it was running) stays out of sight.
    write_events(db, [result(old[9.0], 0, worker="late")])
    write_events(
        db,
        [
            TrialsStarted(
                study_id=STUDY,
                trial_ids=[old[9.0].trial_id],
                worker="late",
                attempt=1,
                started_at=1.0,
            )
        ],
    )
    status = study_status(MongoStore(db), STUDY)
    assert status is not None and status.running == 0 and status.best_score == 0.1
    # The new trial, and a redelivered copy of the kept failure that now succeeds.
    write_events(db, [result(new[0.5], 1), result(new[0.2], 1)])
    status = study_status(MongoStore(db), STUDY)
    assert status is not None and status.complete
    assert (status.done, status.failed, status.best_score) == (3, 0, 0.5)

    # Registering revision 1 again (a redelivery) changes nothing; an older one neither.
    write_events(db, [*registered(new_spec, 1), *registered(old_spec, 0)])
    assert db.studies.find_one({"_id": STUDY})["revision"] == 1  # type: ignore[index]
    assert study_status(MongoStore(db), STUDY).done == 3  # type: ignore[union-attr]


def test_rerun_failed_leaves_failures_behind_until_they_run_again(
    settings: ClientSettings,
) -> None:
    db = connect_store(settings)
    study_spec = spec([0.1, 0.2])
    trials = by_score(study_spec)
    write_events(db, registered(study_spec, 0))
    write_events(db, [result(trials[0.1], 0), result(trials[0.2], 0, "failed")])
    write_events(db, registered(study_spec, 1, rerun_failed=True))
    status = study_status(MongoStore(db), STUDY)
    assert status is not None and (status.done, status.failed, status.queued) == (1, 0, 1)
    # It fails again: the newer failure replaces the older one.
    write_events(db, [result(trials[0.2], 1, "failed", error="still broken")])
    doc = db.trials.find_one({"_id": trials[0.2].trial_id})
    assert doc is not None and doc["revision"] == 1 and doc["error"] == "still broken"


def test_a_second_result_merges_done_first_then_the_later_revision(
    settings: ClientSettings,
) -> None:
    db = connect_store(settings)
    trial = next(iter(by_score(spec([0.3])).values()))
    write_events(db, registered(spec([0.3]), 0))

    def stored() -> tuple[str, int, str]:
        doc = db.trials.find_one({"_id": trial.trial_id})
        assert doc is not None
        return doc["status"], doc["revision"], doc["worker"]

    write_events(db, [result(trial, 2, "failed", worker="a")])
    write_events(db, [result(trial, 1, "failed", worker="b")])  # older failure: ignored
    assert stored() == ("failed", 2, "a")
    write_events(db, [result(trial, 1, worker="c")])  # done wins, in the later revision
    assert stored() == ("done", 2, "c")
    write_events(db, [result(trial, 3, "failed", worker="d")])  # a failure never beats done
    assert stored() == ("done", 3, "c")
    write_events(db, [result(trial, 3, worker="e")])  # the same again: the first one stays
    assert stored() == ("done", 3, "c")


def test_a_revision_waits_for_its_whole_plan(settings: ClientSettings) -> None:
    # Another collector may still hold part of the plan: registering the revision must not
    # decide what it keeps from a partial one (that would hide kept results as superseded).
    db = connect_store(settings)
    study_spec = spec([0.1, 0.2])
    write_events(db, registered(study_spec, 0))
    plan, registration = registered(study_spec, 1)
    assert isinstance(plan, TrialsPlanned)
    write_events(db, [plan.model_copy(update={"trials": plan.trials[:1]})])
    try:
        write_events(db, [registration])
    except PlanIncompleteError as exc:
        assert "1 of 2 planned trials" in str(exc)
    else:
        raise AssertionError("registered a revision with half of its plan")
    assert db.studies.find_one({"_id": STUDY})["revision"] == 0  # type: ignore[index]
    write_events(db, [plan, registration])  # the rest arrives: the revision goes through
    assert db.studies.find_one({"_id": STUDY})["revision"] == 1  # type: ignore[index]
    planned = db.planned.find({"study_id": STUDY}, {"revision": 1, "seq": 1})
    assert sorted((d["seq"], d["revision"]) for d in planned) == [(0, 1), (1, 1)]
