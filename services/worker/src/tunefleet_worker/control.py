"""Which queued trials a worker skips, as it learns it from the control stream.

`tunefleet cancel` publishes `StudyCancelled` on the events exchange; the collector records it and
the control stream (see topology) keeps it. Every worker reads the stream from its first offset
on each connect, so a worker started after the cancel knows it too, then skips (acks without
running) the study's trials still queued. A later `StudyResumed` lifts it, and names the
study's new revision: trials still queued from an older one are skipped as well, because the
resume republished every one of them that the current spec still has and that has no result.
`TrialsSettled` names trials whose results are confirmed although their delivery came back
(`consumer_timeout` closed the channel while they ran): a redelivery skips them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pika
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet_contract.messages import (
    DecodeError,
    StudyCancelled,
    StudyResumed,
    TrialsSettled,
    decode_event,
)
from tunefleet_contract.topology import Topology

__all__ = ["StudyControl"]

log = logging.getLogger(__name__)


class StudyControl:
    """Cancelled study ids and each resumed study's current revision, kept current from the
    control stream (thread-safe reads)."""

    def __init__(self, on_settled: Callable[[TrialsSettled], None] | None = None) -> None:
        # Told of each `TrialsSettled` as it arrives, on the connection's thread.
        self._on_settled = on_settled
        self._cancelled: set[str] = set()
        self._revision: dict[str, int] = {}
        # (study, revision) -> trials with confirmed results whose delivery came back anyway.
        self._settled: dict[tuple[str, int], set[str]] = {}
        self._lock = threading.Lock()

    def settled(self, study_id: str, revision: int, trial_id: str) -> bool:
        """Whether this trial already has a confirmed result (see `TrialsSettled`)."""
        with self._lock:
            return trial_id in self._settled.get((study_id, revision), ())

    def skips(self, study_id: str, revision: int) -> bool:
        """Whether a trial of this study, published in this revision, is not to be run."""
        with self._lock:
            return study_id in self._cancelled or revision < self._revision.get(study_id, 0)

    def apply(self, event: StudyCancelled | StudyResumed | TrialsSettled) -> None:
        with self._lock:
            if isinstance(event, TrialsSettled):
                self._settled.setdefault((event.study_id, event.revision), set()).update(
                    event.trial_ids
                )
            elif isinstance(event, StudyCancelled):
                self._cancelled.add(event.study_id)
            else:
                self._cancelled.discard(event.study_id)
                # max: the stream is replayed from the start on every connect.
                known = self._revision.get(event.study_id, 0)
                self._revision[event.study_id] = max(known, event.revision)

    def follow(self, connection: pika.BlockingConnection, topology: Topology) -> BlockingChannel:
        """Consume the control stream on a channel of its own (call on the connection's thread;
        the connection's event loop delivers). Replays from the start: the set is rebuilt."""
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1000)  # streams require a prefetch limit

        def on_event(
            ch: BlockingChannel,
            method: pika.spec.Basic.Deliver,
            _properties: pika.BasicProperties,
            body: bytes,
        ) -> None:
            try:
                event = decode_event(body)
            except DecodeError as exc:
                log.warning("ignoring an undecodable control event: %s", exc)
            else:
                if isinstance(event, StudyCancelled | StudyResumed | TrialsSettled):
                    self.apply(event)
                    log.info("study %s: %s", event.study_id, event.kind)
                if isinstance(event, TrialsSettled) and self._on_settled is not None:
                    self._on_settled(event)
            # Stream acks only grant credit; nothing is removed.
            ch.basic_ack(method.delivery_tag)

        channel.basic_consume(
            topology.control_queue, on_event, arguments={"x-stream-offset": "first"}
        )
        return channel
