"""Only the command that started dockerd stops it: `make down` leaves the daemon a `make test`
around it started (`engine run --`), which stops it itself when its command ends."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tunefleet_dev import engine


@pytest.fixture
def pidfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "dockerd.pid"
    monkeypatch.setattr(engine, "_PIDFILE", path)
    return path


def _stand_in() -> subprocess.Popen[bytes]:
    """A process in the place of dockerd: stopped by SIGTERM, as dockerd is."""
    return subprocess.Popen(["sleep", "600"])


def test_make_down_leaves_the_daemon_engine_run_started(pidfile: Path) -> None:
    daemon = _stand_in()
    try:
        pidfile.write_text(f"{daemon.pid} run\n")
        assert engine.stop_daemon() is False  # make down, engine stop
        assert daemon.poll() is None and pidfile.exists()
        assert engine.stop_daemon(by="run") is True  # engine run --, when its command ends
        assert daemon.poll() is not None and not pidfile.exists()  # reaped by stop_daemon
    finally:
        daemon.kill()


def test_make_down_stops_the_daemon_make_up_started(pidfile: Path) -> None:
    for recorded in ("commands", ""):  # "": a pid file written before owners were recorded
        daemon = _stand_in()
        try:
            pidfile.write_text(f"{daemon.pid} {recorded}".strip() + "\n")
            assert engine.stop_daemon(by="run") is False
            assert engine.stop_daemon() is True
            assert daemon.poll() is not None and not pidfile.exists()  # reaped by stop_daemon
        finally:
            daemon.kill()


def test_nothing_recorded_nothing_stopped(pidfile: Path) -> None:
    assert engine.stop_daemon() is False and engine.stop_daemon(by="run") is False
