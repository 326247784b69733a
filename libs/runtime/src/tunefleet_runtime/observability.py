"""Health for Kubernetes probes and Prometheus metrics, on one small HTTP port per service.

`serve(port)` starts a daemon thread answering:

- `/livez`: 200 while the service's broker loop keeps turning. Each connection made by
  `tunefleet_runtime.broker.connect` is `watch`ed: a timer on pika's own loop records a tick, so a
  loop stuck for longer than `stall_s` (a deadlock, a hung socket) fails the probe and the
  kubelet restarts the container. Before the first connection the process counts as alive
  (it is retrying with backoff, which the logs say).
- `/readyz`: 200 while a watched connection is open and ticking.
- `/metrics`: the Prometheus text format.

Port 0 (the default, for tests and local runs) serves nothing; the metrics are still counted,
so the counters can be read in-process.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

__all__ = [
    "FOLDS_RESUMED",
    "HANDED_BACK",
    "QUEUE_LAG_SECONDS",
    "REDELIVERIES",
    "TRAINING_SECONDS",
    "TRIALS_FAILED",
    "TRIALS_FINISHED",
    "TRIALS_PUBLISHED",
    "TRIALS_STARTED",
    "WRITE_BATCH_SIZE",
    "Health",
    "HealthServer",
    "delivery_started",
    "health",
    "result_published",
    "serve",
    "watch",
]

log = logging.getLogger(__name__)

TRIALS_PUBLISHED = Counter(
    "tunefleet_trials_published", "Trials published to the trials queue (publisher)."
)
TRIALS_STARTED = Counter(
    "tunefleet_trials_started", "Trials a worker started training, redeliveries included."
)
TRIALS_FINISHED = Counter(
    "tunefleet_trials_finished", "Trial results a worker published, by status.", ["status"]
)
TRIALS_FAILED = Counter(
    "tunefleet_trials_failed", "Trial results with status failed (a subset of finished)."
)
TRAINING_SECONDS = Histogram(
    "tunefleet_training_seconds",
    "Fit time of one trial over all its folds.",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
REDELIVERIES = Counter(
    "tunefleet_redeliveries",
    "Trial messages delivered again by the broker (a crash, a lost connection, a trial "
    "abandoned after the grace period); not the preemptions' hand-backs.",
)
HANDED_BACK = Counter(
    "tunefleet_handed_back",
    "Trial messages a worker told to stop handed back (preemptions).",
)
FOLDS_RESUMED = Counter(
    "tunefleet_folds_resumed", "Folds taken from fold checkpoints instead of trained again."
)
QUEUE_LAG_SECONDS = Histogram(
    "tunefleet_queue_lag_seconds",
    "From publication of a trial message to its delivery to a worker (1 s resolution).",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
WRITE_BATCH_SIZE = Histogram(
    "tunefleet_write_batch_size",
    "Events per collector write to MongoDB.",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 5000),
)
_BROKER_CONNECTED = Gauge("tunefleet_broker_connected", "1 while a watched connection is open.")


def delivery_started(
    trials: int, attempt: int, published_at: int | None, preemptions: int = 0
) -> None:
    """A worker took a trial message: `attempt` counts from 1 (hand-backs included, of which
    there were `preemptions`), `published_at` is AMQP's timestamp property (whole seconds;
    None from publishers that do not set it)."""
    TRIALS_STARTED.inc(trials)
    if attempt > 1 + preemptions:
        REDELIVERIES.inc()
    if published_at:
        QUEUE_LAG_SECONDS.observe(max(0.0, time.time() - published_at))


def result_published(status: str, fit_time_s: float | None) -> None:
    TRIALS_FINISHED.labels(status).inc()
    if status == "failed":
        TRIALS_FAILED.inc()
    if fit_time_s is not None:
        TRAINING_SECONDS.observe(fit_time_s)


class _Connection(Protocol):
    """What `watch` needs of a `pika.BlockingConnection`."""

    @property
    def is_open(self) -> bool: ...

    def call_later(self, delay: float, callback: Any) -> object: ...


class Health:
    """Liveness and readiness of one process, fed by ticks on its broker connection."""

    def __init__(self, tick_s: float = 5.0, stall_s: float = 120.0) -> None:
        self.tick_s = tick_s
        self.stall_s = stall_s
        self._lock = threading.Lock()
        self._connection: _Connection | None = None
        self._last_tick: float | None = None

    def watch(self, connection: _Connection) -> None:
        """Follow this connection from now on (the newest one replaces the previous one)."""

        def tick() -> None:
            with self._lock:
                if self._connection is not connection:
                    return  # a newer connection is watched; let this timer chain end
                self._last_tick = time.monotonic()
            if connection.is_open:
                connection.call_later(self.tick_s, tick)

        with self._lock:
            self._connection = connection
            self._last_tick = time.monotonic()
        connection.call_later(self.tick_s, tick)

    def beat(self) -> None:
        """Proof of progress from outside the loop's timers: a long run of confirmed publishes
        (a large study) dispatches no timers, yet the service is far from stuck."""
        with self._lock:
            if self._connection is not None:
                self._last_tick = time.monotonic()

    def _stalled(self, now: float) -> bool:
        # A closed connection is not a stall: the service is reconnecting with backoff, and a
        # restart would not bring the broker back any sooner.
        connection = self._connection
        if connection is None or self._last_tick is None or not connection.is_open:
            return False
        return now - self._last_tick > self.stall_s

    def alive(self) -> bool:
        with self._lock:
            return not self._stalled(time.monotonic())

    def ready(self) -> bool:
        with self._lock:
            connection = self._connection
            ready = (
                connection is not None
                and connection.is_open
                and not self._stalled(time.monotonic())
            )
        _BROKER_CONNECTED.set(1 if ready else 0)
        return ready


health = Health()


def watch(connection: _Connection) -> None:
    """Called by `tunefleet_runtime.broker.connect` for every connection it makes."""
    health.watch(connection)


class _Handler(BaseHTTPRequestHandler):
    state: Health = health

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self.state.ready()  # refreshes the connected gauge
            self._reply(200, generate_latest(), CONTENT_TYPE_LATEST)
        elif path in {"/livez", "/healthz"}:
            ok = self.state.alive()
            self._reply(200 if ok else 503, b"ok\n" if ok else b"stalled\n")
        elif path == "/readyz":
            ok = self.state.ready()
            self._reply(200 if ok else 503, b"ok\n" if ok else b"not connected\n")
        else:
            self._reply(404, b"not found\n")

    def _reply(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes every few seconds would drown the service's own log lines


class HealthServer:
    """The HTTP endpoint in a daemon thread; `port` is the one actually bound."""

    def __init__(self, port: int, host: str = "0.0.0.0", state: Health = health) -> None:
        handler = type("Handler", (_Handler,), {"state": state})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(port: int, host: str = "0.0.0.0") -> HealthServer | None:
    """Serve health and metrics on `port` (from TUNEFLEET_METRICS_PORT); 0 means off."""
    if port == 0:
        return None
    server = HealthServer(port, host)
    log.info("health and metrics on :%d (/livez, /readyz, /metrics)", server.port)
    return server
