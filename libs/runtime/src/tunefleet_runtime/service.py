"""What the three services' `__main__` modules share: settings errors, signals, logging."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings
from tunefleet_runtime import observability
from tunefleet_runtime.broker import CONNECTION_ERRORS
from tunefleet_runtime.logs import configure_logging
from tunefleet_runtime.settings import BrokerSettings, ServiceSettings

__all__ = ["load_settings", "on_shutdown", "serve_until_stopped", "start_service"]

S = TypeVar("S", bound=BaseSettings)
Service = TypeVar("Service", bound=ServiceSettings)


def load_settings(cls: type[S]) -> S:
    """Read settings once; on a bad environment say which variable is wrong and exit 2."""
    try:
        return cls()
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"]).upper()
            # A check across settings names its variables itself and has no single one.
            message = error["msg"].removeprefix("Value error, ")
            print(f"configuration error: {f'{name}: ' if name else ''}{message}", file=sys.stderr)
        raise SystemExit(2) from None


def on_shutdown(callback: Callable[[], None]) -> None:
    """SIGTERM (Kubernetes, spot preemption) and SIGINT both mean: stop gracefully."""

    def handler(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("tunefleet").info("signal %d: shutting down", signum)
        callback()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def start_service(name: str, cls: type[Service]) -> Service:
    settings = load_settings(cls)  # its errors go to stderr as plain lines, before any logging
    configure_logging(name, settings.tunefleet_log_level)
    if isinstance(settings, BrokerSettings):
        observability.serve(settings.tunefleet_metrics_port)
    return settings


def serve_until_stopped(
    serve: Callable[[], None],
    stopping: threading.Event,
    on_lost: Callable[[], None] | None = None,
) -> None:
    """Run `serve` (one broker connection's life) again after each lost connection.

    `serve` returns when `stopping` is set; a lost connection raises out of it, `on_lost` lets
    the service drop what it held on that connection, and the next `serve` reconnects (with
    backoff, in `broker.connect`).
    """
    log = logging.getLogger("tunefleet")
    while not stopping.is_set():
        try:
            serve()
        except CONNECTION_ERRORS as exc:
            if on_lost is not None:
                on_lost()
            if stopping.is_set():
                break
            log.warning("broker connection lost (%s); reconnecting", exc)
            stopping.wait(0.5)
