"""Helpers for tests that talk to the real broker."""

from __future__ import annotations

import threading
import time
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

Delivery = tuple[pika.spec.Basic.GetOk, pika.BasicProperties, bytes]


def take(channel: BlockingChannel, queue: str, n: int, timeout: float = 60) -> list[Delivery]:
    """Exactly `n` messages from `queue` (acked), waiting up to `timeout` seconds for them."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            channel.connection.sleep(0.05)
            continue
        got.append((method, props, body))
    assert len(got) == n, f"expected {n} messages on {queue}, got {len(got)}"
    return got


def queue_depth(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


class Running:
    """A service object (publisher, worker, collector) run on a thread, stopped at the end."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.thread = threading.Thread(target=service.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.service.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "service did not stop"

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()
