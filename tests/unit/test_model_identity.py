"""A refitted model is identified by what it is, not by its bytes: CatBoost writes a random
`model_guid` and the training time into every `.cbm`, so each refit of one trial used to store a
new blob, and the old one stayed catalogued with nothing naming it. `datasets --prune` now finds
model blobs no stored model names (the in-memory backends; the same on MongoDB/FerretDB is in
tests/integration/test_store_contract.py and test_blob_contract.py)."""

from __future__ import annotations

import time

import pytest
from tunefleet.client import Client
from tunefleet_contract.messages import ModelRefit, ModelStored
from tunefleet_contract.spec import UploadDataset
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.memory import MemoryBlobStore, MemoryStore
from tunefleet_worker.datasets import from_frame
from tunefleet_worker.refit import model_identity, refit, save_native
from tunefleet_worker.training import library_data, make_estimator

from tests.support.tables import mixed_table

STUDY = "churn-0123456789ab"
PARAMS = {"iterations": 5, "depth": 2}


def _message(trial_id: str = "1" * 24, params: dict[str, int] = PARAMS) -> ModelRefit:
    return ModelRefit(
        study_id=STUDY,
        trial_id=trial_id,
        library="catboost",
        params=dict(params),
        dataset=UploadDataset(kind="upload", target="target", sha256="a" * 64, format="csv"),
        task="classification",
        requested_at=0.0,
    )


def _refit(blobs: MemoryBlobStore, message: ModelRefit, rows: int = 240) -> ModelStored:
    data = from_frame(mixed_table(rows=rows), "target")
    return refit(message, data, blobs, threads=1, worker="w", attempts=1)


def test_two_catboost_fits_of_one_model_are_different_bytes() -> None:
    # Why content addressing alone cannot tell that a CatBoost model is already stored.
    data = library_data(from_frame(mixed_table(), "target"), "catboost")
    saved = []
    for _ in range(2):
        estimator = make_estimator("catboost", data.task, dict(PARAMS), 1, data.categorical)
        estimator.fit(data.X, data.y)
        saved.append(save_native("catboost", estimator)[0])
    assert saved[0] != saved[1]


def test_a_second_refit_of_a_trial_keeps_the_stored_blob() -> None:
    blobs = MemoryBlobStore(1 << 24)
    first = _refit(blobs, _message())
    second = _refit(blobs, _message())
    assert first.status == second.status == "done"
    assert (second.sha256, second.size) == (first.sha256, first.size)
    assert [info.sha256 for info in blobs.list("model")] == [first.sha256]


def test_another_trial_or_other_data_is_another_model() -> None:
    blobs = MemoryBlobStore(1 << 24)
    first = _refit(blobs, _message())
    other_trial = _refit(blobs, _message("2" * 24, {"iterations": 6, "depth": 2}))
    other_data = _refit(blobs, _message(), rows=200)  # a file dataset changed under its path
    assert len({first.sha256, other_trial.sha256, other_data.sha256}) == 3
    assert len(blobs.list("model")) == 3


def test_the_identity_ignores_the_thread_count_but_not_the_library_version() -> None:
    data = from_frame(mixed_table(), "target")
    message = _message()
    one = model_identity(message, "1.2.10", data)
    assert one == model_identity(message, "1.2.10", from_frame(mixed_table(), "target"))
    assert one != model_identity(message, "1.2.11", data)
    assert one != model_identity(
        message.model_copy(update={"params": {"depth": 3}}), "1.2.10", data
    )


def _stored(sha256: str, trial_id: str) -> ModelStored:
    return ModelStored(
        study_id=STUDY,
        trial_id=trial_id,
        library="catboost",
        params=PARAMS,
        status="done",
        sha256=sha256,
        format="cbm",
        size=1,
        dataset=UploadDataset(kind="upload", target="target", sha256="a" * 64, format="csv"),
        finished_at=0.0,
    )


@pytest.fixture
def client() -> Client:
    settings = ClientSettings(rabbitmq_url="amqp://u:p@nowhere:1/", mongodb_url="mongodb://x:1")
    return Client(settings, store=MemoryStore(), blobs=MemoryBlobStore(1 << 20))


def test_prune_deletes_the_model_blobs_no_stored_model_names(client: Client) -> None:
    named, _ = client.blobs.put_bytes(b"the model", kind="model", format="cbm")
    replaced, _ = client.blobs.put_bytes(b"the model before", kind="model", format="cbm")
    dataset, _ = client.blobs.put_bytes(b"a,b\n1,2\n", kind="dataset", format="csv")
    client.store.write_events([_stored(replaced.sha256, "1" * 24)])
    client.store.write_events([_stored(named.sha256, "1" * 24)])  # a refit on new data

    # Just stored: a refit whose `model.stored` is not recorded yet keeps its blob.
    assert client.prune_models() == []
    assert len(client.blobs.list("model")) == 2

    time.sleep(0.01)
    assert [i.sha256 for i in client.prune_models(older_than_s=0)] == [replaced.sha256]
    assert [i.sha256 for i in client.blobs.list()] == [dataset.sha256, named.sha256]
    assert client.model_bytes(client.store.models(STUDY)[0]) == b"the model"
