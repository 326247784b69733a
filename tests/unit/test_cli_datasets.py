"""`tunefleet datasets` in an ordinary terminal, read from an in-memory store and blob store."""

from __future__ import annotations

import time

import pytest
from tunefleet import cli
from tunefleet.cli import common
from tunefleet.client import Client
from tunefleet_contract.messages import StudyRegistered
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.memory import MemoryBlobStore, MemoryStore
from typer.testing import CliRunner

from tests.support.tables import mixed_table


def test_every_study_id_is_shown_whole_in_80_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, blobs = MemoryStore(), MemoryBlobStore(1 << 30)
    settings = ClientSettings(rabbitmq_url="amqp://u:p@nowhere:1/", mongodb_url="mongodb://x:1")
    client = Client(settings, store=store, blobs=blobs)
    users = []
    for name in ("h10-frame-with-a-long-name-for-a-study", "churn"):
        spec = client.publishable(
            {
                "name": name,
                "dataset": {"kind": "upload", "target": "target"},
                "search": {"noop": {}},
            },
            mixed_table(),
        )
        now = time.time()
        registered = StudyRegistered(
            study_id=spec.study_id(), spec=spec, n_trials=1, submitted_at=now, published_at=now
        )
        store.write_events([registered])
        users.append(spec.study_id())
    client.publishable(
        {"name": "x", "dataset": {"kind": "upload", "target": "target"}, "search": {"noop": {}}},
        mixed_table(seed=9),
    )
    monkeypatch.setattr(common, "client", lambda: client)

    shown = CliRunner().invoke(cli.app, ["datasets"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert sorted(line.removeprefix("  study ") for line in lines if "study " in line) == sorted(
        users
    )
    assert "  studies: (none)" in lines
    assert sum(line.endswith("  DataFrame") for line in lines) == 2
