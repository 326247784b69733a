"""The probe and metrics endpoint the manifests point their probes and scrapers at."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tunefleet_runtime.observability import TRIALS_STARTED, Health, HealthServer


class FakeConnection:
    """Only what `Health.watch` touches: a flag and pika's timer API, driven by the test."""

    def __init__(self) -> None:
        self.is_open = True
        self.timers: list[Callable[[], None]] = []

    def call_later(self, delay: float, callback: Any) -> object:
        self.timers.append(callback)
        return object()

    def fire(self) -> None:
        timers, self.timers = self.timers, []
        for timer in timers:
            timer()


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


@pytest.fixture
def state() -> Health:
    return Health(tick_s=5.0, stall_s=60.0)


@pytest.fixture
def server(state: Health) -> Iterator[HealthServer]:
    running = HealthServer(0, "127.0.0.1", state)
    yield running
    running.close()


def test_ready_only_while_a_watched_connection_is_open(state: Health, server: HealthServer) -> None:
    assert _get(server.port, "/readyz")[0] == 503
    assert _get(server.port, "/livez")[0] == 200
    connection = FakeConnection()
    state.watch(connection)
    assert _get(server.port, "/readyz") == (200, b"ok\n")
    connection.is_open = False
    assert _get(server.port, "/readyz")[0] == 503
    assert _get(server.port, "/livez")[0] == 200, "reconnecting is not a reason to restart"


def test_a_loop_that_stops_ticking_fails_liveness(
    state: Health, server: HealthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = FakeConnection()
    state.watch(connection)
    clock = [1000.0]
    monkeypatch.setattr("tunefleet_runtime.observability.time.monotonic", lambda: clock[0])
    connection.fire()  # the loop turned: a tick at t=1000, and the next timer is armed
    assert len(connection.timers) == 1
    clock[0] += 59
    assert _get(server.port, "/livez")[0] == 200
    clock[0] += 2  # no tick for 61 s with the connection open: stuck
    assert _get(server.port, "/livez")[0] == 503
    assert _get(server.port, "/readyz")[0] == 503
    connection.fire()
    assert _get(server.port, "/livez")[0] == 200


def test_a_replaced_connection_stops_its_timer_chain(state: Health) -> None:
    old, new = FakeConnection(), FakeConnection()
    state.watch(old)
    state.watch(new)
    old.fire()
    assert old.timers == [], "the old connection must not keep re-arming its timer"
    new.fire()
    assert len(new.timers) == 1


def test_metrics_are_exposed_in_prometheus_format(server: HealthServer) -> None:
    before = TRIALS_STARTED._value.get()
    TRIALS_STARTED.inc(3)
    code, body = _get(server.port, "/metrics")
    assert code == 200
    text = body.decode()
    assert f"tunefleet_trials_started_total {before + 3}" in text
    for name in (
        "tunefleet_trials_finished_total",
        "tunefleet_trials_failed_total",
        "tunefleet_training_seconds_bucket",
        "tunefleet_redeliveries_total",
        "tunefleet_queue_lag_seconds_bucket",
        "tunefleet_write_batch_size_bucket",
        "tunefleet_trials_published_total",
    ):
        assert name in text, name
    assert _get(server.port, "/nope")[0] == 404


def test_worker_events_feed_the_counters() -> None:
    from tunefleet_runtime import observability as obs

    started, redelivered = obs.TRIALS_STARTED._value.get(), obs.REDELIVERIES._value.get()
    lag_count = _sample("tunefleet_queue_lag_seconds_count")
    obs.delivery_started(4, attempt=2, published_at=int(time.time()) - 30)
    obs.delivery_started(1, attempt=1, published_at=None)
    obs.delivery_started(1, attempt=3, published_at=None, preemptions=2)  # hand-backs only
    assert obs.TRIALS_STARTED._value.get() == started + 6
    assert obs.REDELIVERIES._value.get() == redelivered + 1
    assert _sample("tunefleet_queue_lag_seconds_count") == lag_count + 1
    failed = obs.TRIALS_FAILED._value.get()
    obs.result_published("failed", None)
    obs.result_published("done", 2.5)
    assert obs.TRIALS_FAILED._value.get() == failed + 1
    assert _sample("tunefleet_trials_finished_total", {"status": "done"}) >= 1


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name, labels or {})
    return value or 0.0


def test_confirmed_publishes_count_as_progress(
    state: Health, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = FakeConnection()
    state.watch(connection)
    clock = [1000.0]
    monkeypatch.setattr("tunefleet_runtime.observability.time.monotonic", lambda: clock[0])
    state.beat()
    clock[0] += 59
    state.beat()  # no timer fired (publishing a large study), but confirms keep coming
    clock[0] += 59
    assert state.alive()
    clock[0] += 2
    assert not state.alive()
