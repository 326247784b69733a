"""The planner's decisions, as pure logic: which trials a revision has and which of them run."""

from __future__ import annotations

from tunefleet_contract.messages import StudyRequest, TrialResult
from tunefleet_publisher.planner import expand, plan, searches_for
from tunefleet_runtime.records import ResultState
from tunefleet_runtime.validation import parse_spec

SPEC = parse_spec(
    {
        "name": "plan",
        "dataset": "iris",
        "chunk_size": 2,
        "search": {
            "noop": {
                "grid": {"score": [0.1, 0.2, 0.3]},
                "random": {"n_trials": 2, "space": {"x": {"uniform": [0, 1]}}},
            }
        },
    }
)
STUDY = SPEC.study_id()


def request(revision: int = 0, *, rerun_failed: bool = False) -> StudyRequest:
    return StudyRequest(
        study_id=STUDY,
        spec=SPEC,
        submitted_at=1.0,
        revision=revision,
        rerun_failed=rerun_failed,
    )


def test_a_submission_plans_and_publishes_every_trial_in_chunks() -> None:
    decided = plan(request(), {}, 0)
    assert [t.trial_id for t in decided.trials] == [t.trial_id for t in expand(SPEC, STUDY)]
    assert len(decided.trials) == 5 and decided.publish == decided.trials
    messages = decided.messages()
    assert [len(m.trials) for m in messages] == [2, 2, 1]
    assert {m.revision for m in messages} == {0} and messages[0].metric == "accuracy"


def test_a_resume_publishes_only_what_has_no_result() -> None:
    ids = [t.trial_id for t in expand(SPEC, STUDY)]
    gone = "f" * 24  # a result of the revision before that this spec no longer has
    stored = {
        ids[0]: ResultState("done", 0, 0.9),
        ids[1]: ResultState("failed", 0, None),
        gone: ResultState("done", 0, 0.8),
    }
    decided = plan(request(1), stored, 0)
    assert [t.trial_id for t in decided.publish] == ids[2:]
    assert (decided.kept, decided.kept_failed, decided.superseded) == (2, 1, 1)
    rerun = plan(request(1, rerun_failed=True), stored, 0)
    assert [t.trial_id for t in rerun.publish] == ids[1:]
    assert (rerun.kept, rerun.kept_failed) == (1, 0)


def test_grid_and_random_decide_everything_up_front_and_react_to_nothing() -> None:
    searches = searches_for(SPEC, STUDY)
    strategies = searches.strategies
    assert [type(s).__name__ for s in strategies] == ["GridStrategy", "RandomStrategy"]
    assert not any(s.reactive for s in strategies)
    first = list(searches.initial())
    assert [t.search for t in first] == ["grid"] * 3 + ["random"] * 2
    result = TrialResult(
        study_id=STUDY,
        trial_id=first[0].trial_id,
        library="noop",
        params=first[0].params,
        status="done",
        score=0.1,
        finished_at=1.0,
    )
    assert all(s.react(result.trial_id, result.score) == [] for s in strategies)


def test_a_family_stays_in_one_message_and_a_resume_publishes_its_missing_members() -> None:
    spec = parse_spec(
        {
            "dataset": "iris",
            "search": {"xgboost": {"grid": {"max_depth": [2, 3], "n_estimators": [5, 10, 15]}}},
            "chunk_size": 1,
        }
    )
    study = spec.study_id()
    first = StudyRequest(study_id=study, spec=spec, submitted_at=1.0)
    messages = plan(first, {}, 0).messages()
    assert [[t.params for t in m.trials] for m in messages] == [
        [{"max_depth": d, "n_estimators": n} for n in (5, 10, 15)] for d in (2, 3)
    ]
    # A resume of a family with two members stored publishes the third alone.
    missing = [messages[0].trials[1].trial_id, messages[1].trials[2].trial_id]
    stored = {
        t.trial_id: ResultState("done", 0, 0.9)
        for m in messages
        for t in m.trials
        if t.trial_id not in missing
    }
    again = StudyRequest(study_id=study, spec=spec, submitted_at=2.0, revision=1)
    resumed = plan(again, stored, 0).messages()
    assert [[t.trial_id for t in m.trials] for m in resumed] == [[missing[0]], [missing[1]]]
