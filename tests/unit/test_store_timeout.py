"""TUNEFLEET_STORE_TIMEOUT_S: validated against the heartbeat for the services that wait on the
store on their broker thread, and the bound it sets on a run of store calls."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError
from pymongo import _csot  # the driver's deadline, read to check what `bounded` sets
from pymongo.errors import AutoReconnect, NetworkTimeout, OperationFailure
from tunefleet_runtime.service import load_settings
from tunefleet_runtime.settings import (
    ClientSettings,
    CollectorSettings,
    PublisherSettings,
    WorkerSettings,
)
from tunefleet_runtime.store import bounded

URLS = {"rabbitmq_url": "amqp://u:p@localhost:5672/", "mongodb_url": "mongodb://localhost:1/"}


@pytest.mark.parametrize("cls", [CollectorSettings, PublisherSettings])
def test_the_default_store_timeout_fits_the_default_heartbeat(
    cls: type[CollectorSettings | PublisherSettings],
) -> None:
    settings = cls(**URLS)  # type: ignore[arg-type]
    assert settings.tunefleet_store_timeout_s == 10.0
    assert settings.tunefleet_store_timeout_s * 2 < settings.tunefleet_heartbeat_s


@pytest.mark.parametrize("cls", [CollectorSettings, PublisherSettings])
def test_a_store_timeout_of_half_the_heartbeat_or_more_is_refused_and_says_why(
    cls: type[CollectorSettings | PublisherSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEFLEET_STORE_TIMEOUT_S", "15")
    monkeypatch.setenv("TUNEFLEET_HEARTBEAT_S", "30")
    with pytest.raises(ValidationError) as caught:
        cls(**URLS)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "TUNEFLEET_STORE_TIMEOUT_S=15 must be under half of TUNEFLEET_HEARTBEAT_S=30 (15 s)" in (
        message
    )
    assert "lower the store timeout or raise the heartbeat" in message


def test_the_test_suites_short_heartbeat_and_timeout_go_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TUNEFLEET_STORE_TIMEOUT_S", "2")
    monkeypatch.setenv("TUNEFLEET_HEARTBEAT_S", "6")
    assert CollectorSettings(**URLS).tunefleet_store_timeout_s == 2.0  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0", "-1", "301", "soon"])
def test_a_store_timeout_out_of_range_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEFLEET_STORE_TIMEOUT_S", value)
    with pytest.raises(ValidationError, match="tunefleet_store_timeout_s"):
        ClientSettings(**URLS)  # type: ignore[arg-type]


def test_the_worker_reads_blobs_off_its_broker_thread_so_the_heartbeat_does_not_bind_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TUNEFLEET_STORE_TIMEOUT_S", "60")
    settings = WorkerSettings(rabbitmq_url=URLS["rabbitmq_url"])  # type: ignore[arg-type]
    assert settings.tunefleet_store_timeout_s == 60.0


def test_a_bound_sets_the_drivers_deadline_for_every_call_inside() -> None:
    assert _csot.remaining() is None
    with bounded(2.0):
        left = _csot.remaining()  # what the driver gives each call inside
        assert left is not None and 1.5 < left <= 2.0
        with bounded(10.0):
            inner = _csot.remaining()
            assert inner is not None and inner <= 2.0  # an inner bound cannot extend it
    assert _csot.remaining() is None


def test_a_failure_is_a_timeout_when_the_driver_says_so_or_the_time_is_gone() -> None:
    with bounded(0.2) as bound:
        assert bound.ran_out(NetworkTimeout("timed out"))
        assert not bound.ran_out(AutoReconnect("connection closed"))
        assert not bound.ran_out(OperationFailure("refused", code=2))
        time.sleep(0.2)
        # A call the driver cancelled once its monitor gave up is named a connection error.
        assert bound.ran_out(AutoReconnect("operation cancelled"))


def test_a_service_started_with_the_two_at_odds_says_so_in_one_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "RABBITMQ_URL": URLS["rabbitmq_url"],
        "MONGODB_URL": URLS["mongodb_url"],
        "TUNEFLEET_STORE_TIMEOUT_S": "20",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        load_settings(CollectorSettings)
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith(
        "configuration error: TUNEFLEET_STORE_TIMEOUT_S=20 must be under half of "
        "TUNEFLEET_HEARTBEAT_S=30 (15 s): "
    )
