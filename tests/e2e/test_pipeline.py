"""A multi-library study through the three services as separate processes."""

from __future__ import annotations

import pytest
from tunefleet.client import Client
from tunefleet_dev.devservices import Pipeline
from tunefleet_publisher.planner import expand
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_runtime.validation import parse_spec

from tests.support.studies import (
    THREE_LIBRARIES,
    THREE_LIBRARIES_SPEC,
    THREE_LIBRARIES_TRIALS,
    three_libraries_reference,
)


@pytest.mark.timeout(600)
def test_study_through_three_processes(settings: ClientSettings, pipeline: Pipeline) -> None:
    pipeline.start_all(workers=2)
    client = Client(settings)
    study_id = client.submit(THREE_LIBRARIES_SPEC)
    # The same spec twice: the same study, the same trials.
    assert client.submit(THREE_LIBRARIES_SPEC) == study_id

    status = client.wait(study_id, timeout_s=540)
    spec = parse_spec(THREE_LIBRARIES_SPEC)
    expected_ids = {t.trial_id for t in expand(spec, study_id)}
    assert len(expected_ids) == THREE_LIBRARIES_TRIALS
    assert status.n_trials == len(expected_ids)
    assert (status.done, status.failed) == (len(expected_ids), 0)

    db = connect_store(settings)
    docs = list(db.trials.find({"study_id": study_id}))
    assert sorted(d["_id"] for d in docs) == sorted(expected_ids)  # one each, none missing

    reference = three_libraries_reference()
    for doc in docs:
        key = (doc["library"], tuple(sorted(doc["params"].items())))
        assert abs(doc["score"] - reference[key]) <= 1e-9, key
        assert doc["library_version"] and doc["worker"] in {"worker-1", "worker-2"}
        assert len(doc["fold_scores"]) == 3 and doc["fit_time_s"] > 0
        assert doc["fit_shared_by"] == (2 if doc["library"] == "xgboost" else 1)
    assert {d["library"] for d in docs} == set(THREE_LIBRARIES)
    assert {d["worker"] for d in docs} == {"worker-1", "worker-2"}  # both took work

    # Every service is still running, and stops cleanly on SIGTERM.
    for name in list(pipeline.processes):
        assert pipeline.processes[name].poll() is None, name
        assert pipeline.stop(name) == 0, name
