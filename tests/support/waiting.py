"""One way for tests to wait for something to become true."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll `check` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached within {timeout:.0f} s: {what}"
        time.sleep(0.05)
