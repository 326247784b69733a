"""Submitting studies and reading their results: what the CLI and notebooks use."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunefleet.broker import connect, publish, topology_of
from tunefleet.messages import StudyRequest
from tunefleet.settings import ClientSettings
from tunefleet.spec import StudySpec, load_spec, parse_spec
from tunefleet.store import StudyStatus, connect_store, leaderboard, study_status, trial_documents

__all__ = ["Client"]


class Client:
    def __init__(self, settings: ClientSettings | None = None, **overrides: Any) -> None:
        self.settings = settings or ClientSettings(**overrides)
        self._db = connect_store(self.settings)

    @staticmethod
    def spec(spec: StudySpec | Mapping[str, Any] | str | Path) -> StudySpec:
        """Validate a spec given as a model, a mapping or a path to a YAML/JSON file."""
        if isinstance(spec, StudySpec):
            return spec
        if isinstance(spec, str | Path):
            return load_spec(spec)
        return parse_spec(spec)

    def submit(
        self,
        spec: StudySpec | Mapping[str, Any] | str | Path,
        *,
        only_trials: list[str] | None = None,
    ) -> str:
        """Publish the study request (confirmed by the broker); returns the study id."""
        study = self.spec(spec)
        study_id = study.study_id()
        request = StudyRequest(
            study_id=study_id, spec=study, submitted_at=time.time(), only_trials=only_trials
        )
        connection, channel = connect(self.settings, retry_for_s=10)
        try:
            topology = topology_of(self.settings)
            publish(channel, topology.studies_exchange, "study", request.encode())
        finally:
            connection.close()
        return study_id

    def status(self, study_id: str) -> StudyStatus | None:
        return study_status(self._db, study_id)

    def wait(
        self,
        study_id: str,
        *,
        timeout_s: float | None = None,
        poll_s: float = 0.5,
        on_progress: Any = None,
    ) -> StudyStatus:
        """Block until every trial of the study has a result."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = self.status(study_id)
            if on_progress is not None and status is not None:
                on_progress(status)
            if status is not None and status.complete:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"study {study_id} did not finish within {timeout_s} s")
            time.sleep(poll_s)

    def best(self, study_id: str, n: int = 10, library: str | None = None) -> list[dict[str, Any]]:
        return leaderboard(self._db, study_id, limit=n, library=library)

    def trials(self, study_id: str) -> list[dict[str, Any]]:
        return trial_documents(self._db, study_id)
