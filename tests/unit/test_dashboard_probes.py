"""The dashboard's probes, which its Kubernetes Deployment and its compose healthcheck use:
`/livez` answers while the server does, `/readyz` only while the store answers a read."""

from __future__ import annotations

from typing import Any

import pymongo.errors
from tunefleet_runtime.records import StudyRecord
from tunefleet_runtime.store.memory import MemoryStore

from .test_dashboard import _app


class _StoreAway(MemoryStore):
    def studies(self, *args: Any, **kwargs: Any) -> list[StudyRecord]:
        raise pymongo.errors.ServerSelectionTimeoutError("mongodb:27017: timed out, more")


def test_ready_while_the_store_answers() -> None:
    with _app(MemoryStore(), None) as http:
        assert http.get("/livez").json() == {"live": True}
        ready = http.get("/readyz")
        # No broker here ("nowhere:1"): ready all the same, the events stream reported as off.
        assert ready.status_code == 200 and ready.json() == {"ready": True, "events": False}


def test_not_ready_without_the_store_but_alive() -> None:
    with _app(_StoreAway(), None) as http:
        assert http.get("/livez").status_code == 200
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"error": "cannot read MongoDB: mongodb:27017: timed out"}
