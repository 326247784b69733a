"""One time limit on a run of store calls.

The collector and the planner call the store on their broker connection's thread, and pika
sends heartbeats only while that thread is back in its loop. A limit on each call (the client's
`socketTimeoutMS`) is not enough there: one batch makes many calls, and the driver retries some
of them after choosing the server again. `bounded(seconds)` gives the whole run one deadline
(the driver's client-side operation timeout, `pymongo.timeout`: server selection, connecting,
every read and every retry inside it share the remaining time), so that the thread is back in
its loop within `seconds` whatever the store does, and the run fails with a `STORE_ERRORS`
error instead. The deadline is the wall clock's: time spent computing between two calls inside
the bound (the planner deciding) counts too, as it holds back heartbeats just the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pymongo

__all__ = ["Bound", "bounded"]


@dataclass
class Bound:
    """The limit in force, and how much of it has gone."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def ran_out(self, exc: BaseException) -> bool:
        """Whether `exc`, raised inside the bound, means the store did not answer in time
        (rather than answered with a refusal). The driver names most of its timeouts as such
        (`PyMongoError.timeout`), but not all: a call cancelled because the driver's monitor
        gave up on the server is a plain connection error. So the clock decides too: a
        failure once the whole time has gone is the store's silence, whatever its name."""
        return bool(getattr(exc, "timeout", False)) or self.elapsed >= 0.95 * self.seconds


@contextmanager
def bounded(seconds: float) -> Iterator[Bound]:
    """Every store call inside ends, answered or failed, within `seconds` in all."""
    bound = Bound(seconds)
    with pymongo.timeout(seconds):
        yield bound
