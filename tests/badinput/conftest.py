"""One running pipeline for the whole bad-input suite: every input is injected once, up front,
and each test then checks its own input's outcome (starting a pipeline per input would cost
more than all the inputs together)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database
from tunefleet_dev.devservices import Pipeline, Services
from tunefleet_runtime.broker import connect, topology_of
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store

from tests.support.badinputs import (
    BadInput,
    Outcome,
    catalogue,
    inject,
    register_study,
    seed_store,
    service_env,
    wait_for,
)


@dataclass
class BadInputRun:
    settings: ClientSettings
    db: Database[dict[str, Any]]
    pipeline: Pipeline
    cases: list[BadInput]
    outcome: Outcome
    study_id: str


@pytest.fixture(scope="module")
def bad_run(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadInputRun]:
    tag = f"b{uuid.uuid4().hex[:10]}"
    root = tmp_path_factory.mktemp("badinput")
    env = {
        "TUNEFLEET_NAMESPACE": tag,
        "MONGODB_DATABASE": tag,
        **service_env(Path(root) / "data"),
    }
    settings = ClientSettings(
        rabbitmq_url=services.rabbitmq_url,
        mongodb_url=services.mongodb_url,
        tunefleet_namespace=tag,
        mongodb_database=tag,
    )
    study_id = f"badinput-{tag}"
    cases = catalogue(study_id)
    with Pipeline(services, Path(root) / "logs", env=env) as pipeline:
        pipeline.start_all(workers=1)
        db = connect_store(settings)
        seed_store(db)
        register_study(db, study_id)
        connection, channel = connect(settings, retry_for_s=30)
        try:
            inject(channel, topology_of(settings), cases)
        finally:
            connection.close()
        outcome = wait_for(settings, db, cases, timeout=120)
        yield BadInputRun(settings, db, pipeline, cases, outcome, study_id)
