"""One valid message of every kind, for the contract's tests and the decoders' fuzzing."""

from __future__ import annotations

from tunefleet_contract.messages import (
    EVENT_KINDS,
    FeatureLevels,
    FoldCheckpoint,
    FoldScore,
    Message,
    ModelRefit,
    ModelStored,
    RoundCheckpoint,
    StudyCancelled,
    StudyRegistered,
    StudyRequest,
    StudyResumed,
    TrialMessage,
    TrialResult,
    TrialSpec,
    TrialsPlanned,
    TrialsSettled,
    TrialsStarted,
)
from tunefleet_publisher.planner import expand
from tunefleet_runtime.validation import parse_spec

SPEC = parse_spec({"dataset": "iris", "search": {"xgboost": {"grid": {"max_depth": [2, 3]}}}})
TRIALS = list(expand(SPEC, "s"))

REQUEST = StudyRequest(study_id="s", spec=SPEC, submitted_at=1.0)
TRIAL_MESSAGE = TrialMessage(
    study_id="s",
    dataset=SPEC.dataset,
    task="classification",
    metric="accuracy",
    folds=3,
    seed=0,
    # As a worker decodes them: trials, without the plan's record of their search.
    trials=[TrialSpec(trial_id=t.trial_id, library=t.library, params=t.params) for t in TRIALS],
)
# Every kind the events exchange carries (decode_event's), checked complete below.
EVENTS: list[Message] = [
    TrialsPlanned(study_id="s", first=0, trials=TRIALS),
    StudyRegistered(study_id="s", spec=SPEC, n_trials=2, submitted_at=1.0, published_at=2.0),
    TrialsStarted(
        study_id="s", trial_ids=[TRIALS[0].trial_id], worker="w", attempt=1, started_at=1.0
    ),
    TrialResult.of(
        "s", TRIALS[0], revision=0, attempts=1, status="done", score=0.9, fold_scores=[0.8, 1.0]
    ),
    StudyCancelled(study_id="s", cancelled_at=1.0),
    StudyResumed(study_id="s", resumed_at=1.0, revision=1),
    TrialsSettled(study_id="s", trial_ids=[TRIALS[0].trial_id], settled_at=1.0),
    ModelStored(
        study_id="s",
        trial_id=TRIALS[0].trial_id,
        library="xgboost",
        params=TRIALS[0].params,
        status="done",
        sha256="ab" * 32,
        format="ubj",
        size=1234,
        dataset=SPEC.dataset,
        task="classification",
        feature_names=["a", "b"],
        feature_types=["float64", "category"],
        categories=[FeatureLevels(feature="b", levels=["x", "y"])],
        classes=[0, 1, 2],
        finished_at=1.0,
    ),
    FoldCheckpoint(
        study_id="s",
        fold=1,
        folds=3,
        trials=[
            FoldScore(trial_id=TRIALS[0].trial_id, score=0.8, fit_time_s=2.0, score_time_s=0.1)
        ],
        worker="w",
        finished_at=1.0,
    ),
    RoundCheckpoint(
        study_id="s",
        trial_id=TRIALS[0].trial_id,
        library="xgboost",
        fold=1,
        folds=3,
        round=40,
        rounds=100,
        sha256="0" * 64,
        format="ubj",
        size=1234,
        worker="w",
        saved_at=1.0,
    ),
]
assert {m.kind for m in EVENTS} == set(EVENT_KINDS), "an event kind has no sample"
REFIT = ModelRefit(
    study_id="s",
    trial_id=TRIALS[0].trial_id,
    library="xgboost",
    params=TRIALS[0].params,
    dataset=SPEC.dataset,
    task="classification",
    requested_at=1.0,
)
EVERY_KIND: list[Message] = [REQUEST, TRIAL_MESSAGE, REFIT, *EVENTS]
