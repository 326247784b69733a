"""The client's side of uploaded datasets against the real store: upload once, refuse bad data
before anything is published, list and delete only what no study uses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pika.adapters.blocking_connection import BlockingChannel
from tunefleet.cli import app
from tunefleet.client import Client, DatasetInUseError
from tunefleet_contract.messages import ModelStored, StudyRegistered
from tunefleet_contract.spec import SpecError, UploadDataset
from tunefleet_contract.topology import Topology
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store import open_store
from tunefleet_runtime.store.mongo import connect_store
from typer.testing import CliRunner

from tests.support.broker import queue_depth
from tests.support.tables import mixed_table


def spec(dataset: dict[str, object]) -> dict[str, object]:
    return {"name": "up", "dataset": dataset, "search": {"noop": {}}}


def test_a_local_csv_is_uploaded_once_and_the_spec_names_its_hash(
    settings: ClientSettings, tmp_path: Path
) -> None:
    mixed_table().to_csv(tmp_path / "table.csv", index=False)
    client = Client(settings)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(
        json.dumps(spec({"kind": "upload", "target": "target", "path": "table.csv"}))
    )
    resolved = client.publishable(spec_file)  # relative to the spec file
    dataset = resolved.dataset
    assert isinstance(dataset, UploadDataset) and dataset.path is None
    assert dataset.format == "csv" and dataset.sha256 is not None
    [stored] = client.blobs.list("dataset")
    assert stored.sha256 == dataset.sha256 and stored.name == "table.csv"
    assert client.publishable(spec_file) == resolved
    assert client.blobs.list("dataset") == [stored]  # resubmitting uploaded nothing


@pytest.mark.parametrize(
    ("dataset", "error"),
    [
        ({"kind": "upload", "target": "label", "path": "t.csv"}, "no column 'label' in t.csv"),
        ({"kind": "upload", "target": "target", "path": "nope.csv"}, "no such file"),
        (
            {"kind": "upload", "target": "y", "sha256": "ab" * 32, "format": "csv"},
            r"is not stored \(deleted, or never uploaded\)",
        ),
    ],
)
def test_bad_data_is_refused_before_anything_is_published(
    settings: ClientSettings,
    channel: BlockingChannel,
    topology: Topology,
    tmp_path: Path,
    dataset: dict[str, object],
    error: str,
) -> None:
    mixed_table().to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "spec.json").write_text(json.dumps(spec(dataset)))
    client = Client(settings)
    with pytest.raises(SpecError, match=error):
        client.submit(tmp_path / "spec.json")
    assert client.blobs.list() == []
    assert queue_depth(channel, topology.studies_queue) == 0


def test_tables_the_workers_would_refuse_are_refused_at_submit(
    settings: ClientSettings, channel: BlockingChannel, topology: Topology, tmp_path: Path
) -> None:
    # Issue 24: these were found by a worker only after the study was registered.
    (tmp_path / "ragged.csv").write_text("a,y\n1,0\n2,1,7\n3,0\n")
    client = Client(settings)
    with pytest.raises(SpecError, match=r"dataset: ragged.csv: cannot read: .*fields"):
        client.submit(spec({"kind": "upload", "target": "y", "path": str(tmp_path / "ragged.csv")}))
    one_class = mixed_table().assign(target=1)
    with pytest.raises(SpecError, match=r"data: DataFrame: the target 'target' is 1 in all"):
        client.submit(spec({"kind": "upload", "target": "target"}), data=one_class)
    dicts = mixed_table().assign(meta=[{"k": 1}] * 240)
    with pytest.raises(SpecError, match=r"feature column 'meta' holds dict"):
        client.submit(spec({"kind": "upload", "target": "target"}), data=dicts)
    assert client.blobs.list() == []
    assert queue_depth(channel, topology.studies_queue) == 0


def test_an_oversized_file_is_refused_with_the_limit(
    settings: ClientSettings, tmp_path: Path
) -> None:
    mixed_table().to_csv(tmp_path / "t.csv", index=False)
    small = settings.model_copy(update={"tunefleet_max_dataset_bytes": 1000})
    client = Client(small)
    with pytest.raises(SpecError, match=r"over the limit of 1,000 \(TUNEFLEET_MAX_DATASET_BYTES\)"):
        client.submit(spec({"kind": "upload", "target": "target", "path": str(tmp_path / "t.csv")}))
    with pytest.raises(SpecError, match=r"^data: DataFrame \(as Parquet\): .* over the limit"):
        client.submit(spec({"kind": "upload", "target": "target"}), data=mixed_table())
    assert client.blobs.list() == []


def test_datasets_in_use_stay(settings: ClientSettings) -> None:
    client = Client(settings)
    used = client.publishable(spec({"kind": "upload", "target": "target"}), mixed_table())
    unused = client.publishable(spec({"kind": "upload", "target": "target"}), mixed_table(seed=9))
    registered = StudyRegistered(
        study_id=used.study_id(),
        spec=used,
        n_trials=1,
        submitted_at=time.time(),
        published_at=time.time(),
    )
    open_store(settings).write_events([registered])  # as the collector records a study
    used_sha = getattr(used.dataset, "sha256", "")
    unused_sha = getattr(unused.dataset, "sha256", "")
    listed = {info.sha256: users for info, users in client.datasets()}
    assert listed == {used_sha: [used.study_id()], unused_sha: []}

    env = {
        "RABBITMQ_URL": str(settings.rabbitmq_url),
        "MONGODB_URL": str(settings.mongodb_url),
        "TUNEFLEET_NAMESPACE": settings.tunefleet_namespace,
        "MONGODB_DATABASE": settings.mongodb_database,
        "COLUMNS": "200",
    }
    table = CliRunner().invoke(app, ["datasets"], env=env)
    assert table.exit_code == 0 and used.study_id() in table.stdout and "(none)" in table.stdout
    refused = CliRunner().invoke(app, ["datasets", "--delete", used_sha[:10]], env=env)
    assert refused.exit_code == 1
    assert f"is used by 1 study ({used.study_id()}); it stays stored" in refused.output
    with pytest.raises(DatasetInUseError):
        client.delete_dataset(used_sha)
    pruned = CliRunner().invoke(app, ["datasets", "--prune"], env=env)
    assert pruned.exit_code == 0 and "deleted 1 unused datasets" in pruned.stdout
    assert [info.sha256 for info, _ in client.datasets()] == [used_sha]
    assert client.blobs.read_bytes(used_sha)  # still whole


def test_prune_deletes_model_files_no_stored_model_names(settings: ClientSettings) -> None:
    client = Client(settings)
    named, _ = client.blobs.put_bytes(b"the model", kind="model", format="cbm")
    replaced, _ = client.blobs.put_bytes(b"the model before", kind="model", format="cbm")
    fresh, _ = client.blobs.put_bytes(b"a refit not recorded yet", kind="model", format="cbm")
    dataset = UploadDataset(kind="upload", target="target", sha256="a" * 64, format="csv")

    def stored(sha256: str) -> ModelStored:
        return ModelStored(
            study_id="up-0123456789ab",
            trial_id="1" * 24,
            library="catboost",
            params={"depth": 2},
            status="done",
            sha256=sha256,
            format="cbm",
            size=1,
            dataset=dataset,
            finished_at=time.time(),
        )

    store = open_store(settings)
    store.write_events([stored(replaced.sha256)])
    store.write_events([stored(named.sha256)])  # a refit on new data replaced it
    hour_ago = time.time() - 2 * 3600
    connect_store(settings).blobs.update_many(
        {"_id": {"$in": [named.sha256, replaced.sha256]}}, {"$set": {"created_at": hour_ago}}
    )
    env = {
        "RABBITMQ_URL": str(settings.rabbitmq_url),
        "MONGODB_URL": str(settings.mongodb_url),
        "TUNEFLEET_NAMESPACE": settings.tunefleet_namespace,
        "MONGODB_DATABASE": settings.mongodb_database,
        "COLUMNS": "200",
    }
    pruned = CliRunner().invoke(app, ["datasets", "--prune"], env=env)
    assert pruned.exit_code == 0, pruned.output
    assert "and 1 model files no stored model names" in pruned.stdout
    assert {i.sha256 for i in client.blobs.list("model")} == {named.sha256, fresh.sha256}
    assert client.model_bytes(store.models("up-0123456789ab")[0]) == b"the model"
