"""The one way tests wait for something that happens in other processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_until"]

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T], *, what: str, timeout: float = 120.0, interval: float = 0.1
) -> T:
    """Call `probe` until it returns something true, and return that; fail the test, naming
    `what`, after `timeout` seconds. A probe may assert, to fail at once on what is wrong
    rather than waiting it out."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
