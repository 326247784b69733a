"""tunefleet_worker.podcost: when the worker's pod deletion cost is sent, and when it is not.

What the API server does with it (the admission policy, the ReplicaSet's choice on scale-down)
is tested against a live API server in tests/cluster/test_gke.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from tunefleet_runtime.settings import WorkerSettings
from tunefleet_worker.podcost import BUSY, IDLE, DeletionCost
from tunefleet_worker.worker import Worker


class Recorded(DeletionCost):
    """The API call replaced by a list (and a switch to make it fail)."""

    def __init__(self, busy: list[bool]) -> None:
        account = Path(__file__)
        super().__init__("worker-0", "tunefleet", "https://api", account, _ca(), lambda: busy[0])
        self.calls: list[int] = []
        self.failing = False

    def set(self, cost: int) -> None:
        if self.failing:
            raise OSError("connection refused")
        self.calls.append(cost)


def _ca() -> Path:
    import certifi

    return Path(certifi.where())


def test_only_a_change_is_sent() -> None:
    busy = [False]
    cost = Recorded(busy)
    for _ in range(3):
        assert cost.update()
    busy[0] = True
    cost.update()
    cost.update()
    busy[0] = False
    cost.update()
    assert cost.calls == [IDLE, BUSY, IDLE]


def test_a_failed_update_is_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    busy = [True]
    cost = Recorded(busy)
    cost.failing = True
    assert not cost.update()
    assert "cannot set pod worker-0's deletion cost to 1000" in caplog.text
    cost.failing = False
    assert cost.update()
    assert cost.calls == [BUSY]


def test_without_a_service_account_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert DeletionCost.in_cluster("worker-0", lambda: False, tmp_path / "none") is None
    account = tmp_path / "account"
    account.mkdir()
    (account / "token").write_text("t0ken\n")
    (account / "ca.crt").write_text(_ca().read_text())
    (account / "namespace").write_text("tunefleet")
    assert DeletionCost.in_cluster("", lambda: False, account) is None, "no pod name: compose"
    found = DeletionCost.in_cluster("worker-0", lambda: False, account)
    assert found is not None
    assert found.url == "https://10.96.0.1:443/api/v1/namespaces/tunefleet/pods/worker-0"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert DeletionCost.in_cluster("worker-0", lambda: False, account) is None


def test_a_worker_is_busy_while_a_delivery_is_in_hand(tmp_path: Path) -> None:
    settings = WorkerSettings(
        rabbitmq_url="amqp://u:p@127.0.0.1:1/%2F", tunefleet_cache_dir=tmp_path / "cache"
    )
    worker = Worker(settings)
    assert not worker.busy
    worker._job = object()  # type: ignore[assignment]
    assert worker.busy
