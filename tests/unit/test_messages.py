from __future__ import annotations

import json

import pytest
from tunefleet_contract.messages import (
    DecodeError,
    FoldCheckpoint,
    FoldScore,
    RoundCheckpoint,
    TrialMessage,
    TrialResult,
    TrialsStarted,
    decode_event,
    finite_or_none,
)

from tests.support.messages import EVENTS, EVERY_KIND, TRIAL_MESSAGE, TRIALS


def result(**fields: object) -> TrialResult:
    base: dict[str, object] = {
        "study_id": "s",
        "trial_id": TRIALS[0].trial_id,
        "library": "xgboost",
        "params": {"max_depth": 2},
        "status": "done",
        "score": 0.9,
        "fold_scores": [0.8, 1.0],
        "finished_at": 1.0,
    }
    base.update(fields)
    return TrialResult.model_validate(base)


@pytest.mark.parametrize("message", EVERY_KIND, ids=lambda m: m.kind)
def test_round_trip(message: object) -> None:
    body = message.encode()  # type: ignore[attr-defined]
    assert json.loads(body)["schema_version"] == 1
    assert type(message).decode(body) == message  # type: ignore[attr-defined]


def test_decode_event_dispatches_on_kind() -> None:
    for event in EVENTS:
        assert decode_event(event.encode()) == event


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"schema_version": 2, "kind": "trial.batch"}', "schema_version 2 is not supported"),
        (b'{"schema_version": 1, "kind": "trial.result"}', "expected a 'trial.batch' message"),
        (b'{"schema_version": 1, "kind": "trial.batch", "study_id": "s"}', "invalid 'trial.batch'"),
        (b'{"schema_version": 1, "kind": "trial.batch", "x": NaN}', "NaN is not allowed"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_bad_bodies_raise_decode_error(body: bytes, expected: str) -> None:
    with pytest.raises(DecodeError, match=expected):
        TrialMessage.decode(body)


def test_unknown_fields_and_bad_ids_refused() -> None:
    payload = json.loads(TRIAL_MESSAGE.encode())
    payload["pickle"] = "gASV"
    with pytest.raises(DecodeError, match="pickle"):
        TrialMessage.decode(json.dumps(payload).encode())
    payload = json.loads(TRIAL_MESSAGE.encode())
    payload["trials"][0]["trial_id"] = "../../etc"
    with pytest.raises(DecodeError, match="trial_id"):
        TrialMessage.decode(json.dumps(payload).encode())


def test_unknown_event_kind() -> None:
    with pytest.raises(DecodeError, match="unknown event kind"):
        decode_event(b'{"schema_version": 1, "kind": "trial.exploded"}')


def test_non_finite_values_cannot_be_encoded_and_are_sanitized() -> None:
    assert finite_or_none(float("nan")) is None
    assert finite_or_none(float("inf")) is None
    assert finite_or_none(0.5) == 0.5
    with pytest.raises(ValueError):
        result(score=float("nan")).encode()


def test_a_fold_checkpoint_is_validated_strictly() -> None:
    sample = next(m for m in EVENTS if isinstance(m, FoldCheckpoint))
    payload = json.loads(sample.encode())
    for change, expected in (
        ({"fold": 3}, "fold 3 is not one of 3 folds"),
        ({"folds": 1}, "folds"),
        ({"trials": []}, "trials"),
        ({"trials": [{**payload["trials"][0], "fit_time_s": -1.0}]}, "fit_time_s"),
        ({"trials": [{**payload["trials"][0], "trial_id": "../x"}]}, "trial_id"),
        ({"trials": [{**payload["trials"][0], "booster": "gASV"}]}, "booster"),
    ):
        with pytest.raises(DecodeError, match=expected):
            decode_event(json.dumps({**payload, **change}).encode())
    # NaN cannot travel (JSON has none): a fold score that is not finite travels as None.
    with pytest.raises(ValueError):
        FoldScore(trial_id="a" * 24, score=float("nan"), fit_time_s=1.0, score_time_s=0.0)
    assert decode_event(sample.encode()) == sample


def test_a_round_checkpoint_is_validated_strictly() -> None:
    sample = next(m for m in EVENTS if isinstance(m, RoundCheckpoint))
    payload = json.loads(sample.encode())
    for change, expected in (
        ({"fold": 3}, "fold 3 is not one of 3 folds"),
        ({"round": 100}, "round 100 is not before the last of 100"),
        ({"round": 0}, "round"),
        ({"sha256": "../etc/passwd"}, "sha256"),
        ({"booster": "gASV"}, "booster"),  # the booster travels as a blob, never inline
        ({"trial_id": "x"}, "trial_id"),
    ):
        with pytest.raises(DecodeError, match=expected):
            decode_event(json.dumps({**payload, **change}).encode())
    assert decode_event(sample.encode()) == sample


def test_checkpoint_and_resumed_round_travel_only_when_set() -> None:
    """A trial message with the default `checkpoint: folds`, and a result that no round
    checkpoint resumed, encode as a release before wrote them (and it decodes them)."""
    assert b"checkpoint" not in TRIAL_MESSAGE.encode()
    rounds = TRIAL_MESSAGE.model_copy(update={"checkpoint": "rounds"})
    assert TrialMessage.decode(rounds.encode()).checkpoint == "rounds"
    with pytest.raises(DecodeError, match="checkpoint"):
        TrialMessage.decode(rounds.encode().replace(b'"rounds"', b'"boosters"'))
    assert b"rounds_from" not in rounds.encode()
    cut = next(m for m in EVENTS if isinstance(m, RoundCheckpoint))
    carrying = rounds.model_copy(update={"rounds_from": [cut]})
    assert TrialMessage.decode(carrying.encode()).rounds_from == [cut]
    plain = result()
    assert b"resumed_at_round" not in plain.encode()
    marked = plain.model_copy(update={"resumed_at_round": 40})
    assert TrialResult.decode(marked.encode()).resumed_at_round == 40


def test_a_start_says_its_preemptions_only_when_there_were_some() -> None:
    start = TrialsStarted(study_id="s", trial_ids=["a" * 24], worker="w", attempt=3, started_at=1.0)
    assert b"preemptions" not in start.encode()  # a release before decodes it as it was
    again = start.model_copy(update={"preemptions": 2})
    assert TrialsStarted.decode(again.encode()).preemptions == 2
    with pytest.raises(DecodeError, match="preemptions"):
        TrialsStarted.decode(again.encode().replace(b'"preemptions":2', b'"preemptions":0'))
