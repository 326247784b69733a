"""Every decoder, given anything: a message of its kind or `DecodeError`, never another raise."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pika
from hypothesis import given
from hypothesis import strategies as st
from tunefleet_collector.collector import dead_trial_results
from tunefleet_contract.documents import check_document
from tunefleet_contract.messages import (
    DecodeError,
    Message,
    TrialMessage,
    decode_event,
)
from tunefleet_runtime.consumer import RefusalError
from tunefleet_runtime.deadletters import describe, format_dead_letter
from tunefleet_worker.worker import check_message

from tests.support.messages import EVERY_KIND, TRIAL_MESSAGE

from .strategies import HOSTILE_BODIES, JSON, SCALARS, mutated


def _payload(message: Message) -> dict[str, Any]:
    return {**message.model_dump(mode="json"), "kind": message.kind}


def _decoded_or_refused(cls: type[Message], body: bytes) -> Message | None:
    try:
        message = cls.decode(body)
    except DecodeError:
        return None
    # What decodes is storable as it is, on any store, and encodes again.
    check_document(message.model_dump(mode="json"))
    assert cls.decode(message.encode()) == message
    return message


@given(HOSTILE_BODIES)
def test_any_body_is_an_event_or_a_decode_error(body: bytes) -> None:
    for cls in (type(m) for m in EVERY_KIND):
        _decoded_or_refused(cls, body)
    with contextlib.suppress(DecodeError):
        decode_event(body)


@given(
    st.sampled_from(EVERY_KIND).flatmap(lambda m: st.tuples(st.just(type(m)), mutated(_payload(m))))
)
def test_mutated_messages_decode_or_are_refused(case: tuple[type[Message], Any]) -> None:
    cls, payload = case
    body = json.dumps(payload).encode()
    _decoded_or_refused(cls, body)
    with contextlib.suppress(DecodeError):
        decode_event(body)


@given(mutated(_payload(TRIAL_MESSAGE)), st.integers(1, 64))
def test_the_worker_check_refuses_only_with_a_reason(payload: Any, threads: int) -> None:
    message = _decoded_or_refused(TrialMessage, json.dumps(payload).encode())
    if isinstance(message, TrialMessage):
        with contextlib.suppress(DecodeError, RefusalError):
            check_message(message, threads)


HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "x-death",
            "x-tunefleet-reason",
            "x-tunefleet-queue",
            "x-delivery-count",
            "x-tunefleet-dead-at",
            "other",
        ]
    ),
    JSON | st.lists(st.dictionaries(st.sampled_from(["reason", "queue", "time"]), SCALARS)),
    max_size=4,
)


@given(
    HOSTILE_BODIES | mutated(_payload(TRIAL_MESSAGE)).map(lambda p: json.dumps(p).encode()), HEADERS
)
def test_dead_letter_readers_survive_any_body_and_headers(
    body: bytes, headers: dict[str, Any]
) -> None:
    properties = pika.BasicProperties(headers=headers)
    letter = describe(body, properties)
    assert letter.size == len(body)
    assert isinstance(format_dead_letter(letter), str)
    for result in dead_trial_results(body, properties, delivery_limit=3):
        assert result.status == "failed" and result.attempts >= 1
