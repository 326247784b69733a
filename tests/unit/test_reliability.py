"""Pure logic behind the reliability guarantees: reading dead letters, delivery attempts,
sanitizing before storage, telling a store outage from a document the store refuses."""

from __future__ import annotations

import ast
import logging
import math
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest
from pydantic import ValidationError
from tunefleet_collector.collector import dead_trial_results
from tunefleet_contract.documents import finite
from tunefleet_contract.messages import DecodeError, TrialMessage
from tunefleet_runtime.broker import REASON_HEADER, SOURCE_HEADER, delivery_attempt
from tunefleet_runtime.consumer import RefusalError
from tunefleet_runtime.deadletters import death_reason, describe, format_dead_letter, source_queue
from tunefleet_runtime.service import start_service
from tunefleet_runtime.settings import BrokerSettings, PublisherSettings, StoreSettings
from tunefleet_worker.worker import check_message

TRIAL_MESSAGE = TrialMessage.model_validate(
    {
        "study_id": "s-1",
        "dataset": {"kind": "builtin", "name": "iris"},
        "task": "classification",
        "metric": "accuracy",
        "folds": 2,
        "seed": 0,
        "trials": [{"trial_id": "a" * 24, "library": "noop", "params": {"x": 1.0}}],
    }
)


def props(**headers: object) -> pika.BasicProperties:
    return pika.BasicProperties(headers=headers or None)


def test_our_reason_header_wins_over_the_brokers() -> None:
    headers = {REASON_HEADER: "not JSON", "x-death": [{"reason": "rejected", "queue": "q"}]}
    assert death_reason(headers) == "not JSON"


def test_the_brokers_delivery_limit_reads_as_ours() -> None:
    headers = {"x-death": [{"reason": "delivery_limit", "queue": "ns.trials"}]}
    assert death_reason(headers) == "delivery-limit"
    assert source_queue(headers) == "ns.trials"


def test_a_dead_letter_without_headers_still_has_a_reason() -> None:
    assert death_reason(None) == "dead-lettered"
    assert source_queue({}) is None


def test_describe_reads_what_it_can_of_any_body() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    letter = describe(
        TRIAL_MESSAGE.encode(),
        props(**{"x-death": [{"reason": "delivery_limit", "queue": "ns.trials", "time": when}]}),
    )
    assert (letter.kind, letter.study_id, letter.trial_ids) == ("trial.batch", "s-1", ("a" * 24,))
    assert letter.dead_at == when.timestamp()
    assert "delivery-limit" in format_dead_letter(letter)

    garbage = describe(b"\xff\x00", props(**{REASON_HEADER: "not JSON", SOURCE_HEADER: "ns.x"}))
    assert (garbage.kind, garbage.queue, garbage.reason) == (None, "ns.x", "not JSON")
    assert "unreadable" in format_dead_letter(garbage)


def test_delivery_attempt_counts_from_one_and_never_raises() -> None:
    assert delivery_attempt(None) == 1
    assert delivery_attempt(props()) == 1
    assert delivery_attempt(props(**{"x-delivery-count": 3})) == 4
    assert delivery_attempt(props(**{"x-delivery-count": "many"})) == 1


def test_a_dead_trial_message_becomes_failed_results_with_the_reason() -> None:
    limit = dead_trial_results(
        TRIAL_MESSAGE.encode(),
        props(**{"x-death": [{"reason": "delivery_limit"}], "x-delivery-count": 10}),
        delivery_limit=3,
    )
    assert [(r.status, r.reason, r.attempts) for r in limit] == [("failed", "delivery-limit", 11)]
    refused = dead_trial_results(
        TRIAL_MESSAGE.encode(), props(**{REASON_HEADER: "dataset: x"}), delivery_limit=3
    )
    assert [(r.reason, r.error, r.attempts) for r in refused] == [("rejected", "dataset: x", 1)]
    assert dead_trial_results(b"not a trial", props(), delivery_limit=3) == []


def test_a_delivery_limit_failure_counts_every_delivery_and_keeps_the_revision() -> None:
    # The dead-lettered copy carries no x-delivery-count: the limit says how many there were.
    message = TRIAL_MESSAGE.model_copy(update={"revision": 2})
    [result] = dead_trial_results(
        message.encode(), props(**{"x-death": [{"reason": "delivery_limit"}]}), delivery_limit=3
    )
    assert (result.attempts, result.revision) == (4, 2)


def test_finite_replaces_every_nan_and_infinity_at_any_depth() -> None:
    doc = {"a": math.nan, "b": [1.0, -math.inf, {"c": math.inf}], "d": "nan", "e": 3}
    assert finite(doc) == {"a": None, "b": [1.0, None, {"c": None}], "d": "nan", "e": 3}


def test_the_worker_refuses_an_unknown_library_even_without_parameters() -> None:
    message = TrialMessage.model_validate(
        {
            **TRIAL_MESSAGE.model_dump(),
            "trials": [{"trial_id": "b" * 24, "library": "sklearn", "params": {}}],
        }
    )
    # A policy refusal, not a DecodeError: the message is well formed, this worker won't run it.
    with pytest.raises(RefusalError, match="unknown library 'sklearn'") as refused:
        check_message(message, max_threads=4)
    assert not isinstance(refused.value, DecodeError)


SOURCES = [
    *Path(__file__).resolve().parents[2].glob("libs/*/src/**/*.py"),
    *Path(__file__).resolve().parents[2].glob("services/*/src/**/*.py"),
]


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_nothing_on_the_wire_is_pickled() -> None:
    assert SOURCES
    for path in SOURCES:
        assert not _imported(path) & {"pickle", "marshal", "shelve", "dill", "cloudpickle"}, path


def test_credentials_come_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RABBITMQ_URL", "MONGODB_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="rabbitmq_url"):
        BrokerSettings()
    with pytest.raises(ValidationError, match="mongodb_url"):
        StoreSettings()
    # The local development services are the only place with a default user.
    for path in SOURCES:
        if path.name != "devservices.py":
            assert "guest" not in path.read_text(), path


def test_log_level_is_a_validated_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RABBITMQ_URL", "amqp://u:p@localhost:5672/%2F")
    monkeypatch.setenv("MONGODB_URL", "mongodb://u:p@localhost:27017/")
    monkeypatch.setenv("TUNEFLEET_LOG_LEVEL", "debug")
    root = logging.getLogger()
    # start_service configures the root logger; give pytest's back afterwards.
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    assert start_service("publisher", PublisherSettings).tunefleet_log_level == "DEBUG"
    assert root.level == logging.DEBUG
    monkeypatch.setenv("TUNEFLEET_LOG_LEVEL", "LOUD")
    with pytest.raises(SystemExit) as exited:
        start_service("publisher", PublisherSettings)
    assert exited.value.code == 2
    assert "TUNEFLEET_LOG_LEVEL" in capsys.readouterr().err
