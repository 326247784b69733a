"""The contract refuses what no store should be handed, whatever the store (issue 11.6), and
says what is wrong with a spec in the spec's own terms (issue 11.5)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tunefleet_contract.documents import DocumentError, check_document, load_json
from tunefleet_contract.messages import DecodeError, TrialResult, TrialSpec, decode_event
from tunefleet_contract.spec import SpecError
from tunefleet_runtime.validation import parse_spec


@pytest.mark.parametrize("key", ["$where", "$set", "a.b", ".", "nul\x00"])
def test_operator_and_path_keys_are_refused_at_any_depth(key: str) -> None:
    with pytest.raises(DocumentError, match="is not allowed"):
        check_document({"a": [{"b": {key: 1}}]})


def test_nesting_is_bounded_without_recursion() -> None:
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(DocumentError, match="nested deeper than 32"):
        check_document(deep)
    check_document({"a": [[[[1]]]]})  # ordinary nesting passes


def test_a_body_too_deep_for_the_parser_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="nested deeper"):
        load_json(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(DecodeError, match="not JSON: nested deeper"):
        decode_event(b"[" * 100_000 + b"]" * 100_000)


def test_a_result_with_a_dollar_parameter_cannot_be_built_or_decoded() -> None:
    trial = TrialSpec(trial_id="a" * 24, library="noop", params={"x": 1.0})
    good = TrialResult.of("s-1", trial, revision=0, attempts=1, status="done")
    with pytest.raises(ValidationError, match="is not allowed"):
        TrialSpec(trial_id="a" * 24, library="noop", params={"$where": 1.0})
    body = good.encode().replace(b'"x"', b'"$where"')
    with pytest.raises(DecodeError, match="is not allowed"):
        TrialResult.decode(body)


def test_failed_results_carry_revision_and_count() -> None:
    trial = TrialSpec(trial_id="a" * 24, library="noop", params={})
    failed = TrialResult.failed(
        "s-1", trial, revision=3, attempts=4, reason="delivery-limit", error="x" * 20_000
    )
    assert (failed.status, failed.revision, failed.attempts) == ("failed", 3, 4)
    assert failed.error is not None and len(failed.error) == 10_000


@pytest.mark.parametrize(
    ("search", "message"),
    [
        (
            {"xgboost": {"grid": {"max_depth": [[1]]}}},
            "search.xgboost.grid.max_depth.0: Input should be a valid integer, number, string or "
            "boolean",
        ),
        (
            {"xgboost": {"fixed": {"a.b": 1}}},
            "search.xgboost.fixed: key 'a.b' is not allowed (no leading '$', no '.', no NUL)",
        ),
    ],
)
def test_spec_errors_name_the_users_fields_not_pydantics_types(
    search: dict[str, object], message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"name": "x", "dataset": "iris", "search": search})
    assert str(caught.value) == message
    assert "dict[" not in str(caught.value) and "nullable" not in str(caught.value)
