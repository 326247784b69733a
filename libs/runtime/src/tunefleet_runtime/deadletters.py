"""The dead-letter queue: what could not be processed, why, and putting it back.

Every message that a service refuses (it `dead_letter`s it with a reason header) and every
trial message the broker gives up on (quorum-queue `delivery-limit`) ends in the namespace's
`dead-letters` queue, where it stays until someone reads it. `tunefleet dead-letters` lists them;
`--requeue` sends them back to the queue they came from, e.g. after fixing a worker's data root.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_contract.documents import load_json
from tunefleet_runtime.broker import REASON_HEADER, SOURCE_HEADER, connect, publish, topology_of
from tunefleet_runtime.settings import BrokerSettings

__all__ = [
    "DEAD_AT_HEADER",
    "REQUEUED_HEADER",
    "DeadLetter",
    "death_reason",
    "describe",
    "format_dead_letter",
    "list_dead_letters",
    "requeue_dead_letters",
    "source_queue",
]

DEAD_AT_HEADER = "x-tunefleet-dead-at"
_LATEST = 253_402_300_800  # 10000-01-01: the first date datetime cannot show
REQUEUED_HEADER = "x-tunefleet-requeued"
# Headers that describe one death; a requeued message starts clean of them.
_DEATH_HEADERS = (
    REASON_HEADER,
    SOURCE_HEADER,
    DEAD_AT_HEADER,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-delivery-count",
)


def _first_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get("x-death") or []
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    return {}


def death_reason(headers: Mapping[str, Any] | None) -> str:
    """Why a message was dead-lettered: our reason header, else the broker's x-death reason."""
    headers = headers or {}
    if REASON_HEADER in headers:
        return _text(headers[REASON_HEADER])
    reason = _first_death(headers).get("reason")
    if reason is None:
        return "dead-lettered"
    text = _text(reason)
    # RabbitMQ spells it with an underscore; tunefleet's reasons use hyphens throughout.
    return "delivery-limit" if text == "delivery_limit" else text


def source_queue(headers: Mapping[str, Any] | None) -> str | None:
    """The queue a dead letter came from."""
    headers = headers or {}
    if SOURCE_HEADER in headers:
        return _text(headers[SOURCE_HEADER])
    queue = _first_death(headers).get("queue")
    return _text(queue) if queue is not None else None


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    queue: str | None
    dead_at: float | None
    size: int
    kind: str | None
    study_id: str | None
    trial_ids: tuple[str, ...]
    preview: str
    headers: Mapping[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "queue": self.queue,
            "dead_at": self.dead_at,
            "size": self.size,
            "kind": self.kind,
            "study_id": self.study_id,
            "trial_ids": list(self.trial_ids),
            "preview": self.preview,
            "headers": dict(self.headers),
        }


def describe(body: bytes, properties: pika.BasicProperties, preview_chars: int = 200) -> DeadLetter:
    """What a dead letter is, as far as it can be read: it may be anything."""
    headers: dict[str, Any] = properties.headers or {}
    kind = study_id = None
    trial_ids: tuple[str, ...] = ()
    try:
        payload = load_json(body)
    except ValueError:  # anything at all, nested 100,000 deep included
        payload = None
    if isinstance(payload, dict):
        kind = payload.get("kind") if isinstance(payload.get("kind"), str) else None
        study_id = payload.get("study_id") if isinstance(payload.get("study_id"), str) else None
        trials = payload.get("trials")
        if isinstance(trials, list):
            trial_ids = tuple(
                str(t["trial_id"]) for t in trials if isinstance(t, dict) and "trial_id" in t
            )
    dead_at = headers.get(DEAD_AT_HEADER)
    if dead_at is None:
        when = _first_death(headers).get("time")
        dead_at = when.timestamp() if isinstance(when, datetime) else None
    return DeadLetter(
        reason=death_reason(headers),
        queue=source_queue(headers),
        dead_at=_timestamp(dead_at),
        size=len(body),
        kind=kind,
        study_id=study_id,
        trial_ids=trial_ids,
        preview=body[:preview_chars].decode(errors="replace"),
        # The flat ones (x-death is a list of tables, summed up in reason and queue above).
        headers={k: _text(v) for k, v in headers.items() if not isinstance(v, list | dict | tuple)},
    )


def _timestamp(value: object) -> float | None:
    """Seconds since the epoch, if the header holds a date a person could mean (headers can
    hold anything: a message may come from anywhere)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value < _LATEST:  # also false for NaN
        return None
    return float(value)


def format_dead_letter(letter: DeadLetter) -> str:
    """One line for people: when, from where, what, why."""
    when = (
        datetime.fromtimestamp(letter.dead_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        if letter.dead_at is not None
        else "-"
    )
    what = letter.kind or "unreadable"
    if letter.study_id:
        what += f" {letter.study_id}"
    if letter.trial_ids:
        what += f" ({len(letter.trial_ids)} trials)"
    reason = " ".join(letter.reason.split())
    return f"{when}  {letter.queue or '?'}  {what}, {letter.size:,} bytes: {reason}"


def _drain(
    settings: BrokerSettings,
    limit: int | None,
    handle: Callable[[BlockingChannel, int, pika.BasicProperties, bytes], bool],
) -> int:
    """Get messages one by one without acking; `handle` says whether to ack each. Closing the
    connection at the end hands every unacked one back to the queue, in place."""
    connection, channel = connect(settings, retry_for_s=10)
    queue = topology_of(settings).dead_letter_queue
    handled = 0
    try:
        # Only what is there now: a requeued message may die again meanwhile and come back
        # behind these, and must not be taken a second time in the same pass.
        present = int(channel.queue_declare(queue, passive=True).method.message_count)
        limit = present if limit is None else min(limit, present)
        while handled < limit:
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            handled += 1
            if handle(channel, method.delivery_tag, properties, body):
                channel.basic_ack(method.delivery_tag)
    finally:
        if connection.is_open:
            connection.close()
    return handled


def list_dead_letters(
    settings: BrokerSettings, limit: int | None = 100, *, reason_contains: str | None = None
) -> list[DeadLetter]:
    """Read up to `limit` dead letters, oldest first, leaving them in the queue."""
    found: list[DeadLetter] = []

    def keep(
        _channel: BlockingChannel, _tag: int, properties: pika.BasicProperties, body: bytes
    ) -> bool:
        letter = describe(body, properties)
        if reason_contains is None or reason_contains in letter.reason:
            found.append(letter)
        return False

    _drain(settings, limit, keep)
    return found


def requeue_dead_letters(
    settings: BrokerSettings,
    *,
    limit: int | None = None,
    reason_contains: str | None = None,
) -> int:
    """Send dead letters back to the queue they came from (those matching `reason_contains`,
    if given); returns how many. Each is republished (confirmed) before it is acked here."""
    topology = topology_of(settings)
    ours = {
        topology.studies_queue,
        topology.trials_queue,
        topology.events_queue,
    }
    moved = 0

    def move(
        channel: BlockingChannel, _tag: int, properties: pika.BasicProperties, body: bytes
    ) -> bool:
        nonlocal moved
        headers: dict[str, Any] = dict(properties.headers or {})
        queue = source_queue(headers)
        if queue not in ours:
            return False
        if reason_contains is not None and reason_contains not in death_reason(headers):
            return False
        clean = {k: v for k, v in headers.items() if k not in _DEATH_HEADERS}
        clean[REQUEUED_HEADER] = int(headers.get(REQUEUED_HEADER, 0) or 0) + 1
        # The default exchange routes by queue name: straight back where it came from.
        publish(channel, "", str(queue), body, clean)
        moved += 1
        return True

    _drain(settings, limit, move)
    return moved
