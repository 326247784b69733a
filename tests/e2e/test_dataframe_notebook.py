"""The DataFrame notebook: a table built in the notebook, tuned by workers that cannot read the
notebook's files, and the best model back, predicting exactly as a local fit."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from tunefleet_dev.devservices import Pipeline
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "dataframe.ipynb"


def test_dataframe_notebook_executes(
    service_env: dict[str, str], pipeline: Pipeline, settings: ClientSettings, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "worker-data"
    elsewhere.mkdir()
    pipeline.start_all(
        workers=2,
        TUNEFLEET_DATA_ROOTS=str(elsewhere),
        TUNEFLEET_CACHE_DIR=str(tmp_path / "worker-cache"),
    )
    (tmp_path / "notebook").mkdir()
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path / "notebook")}},
    ).execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "identical predictions on 100 unseen rows" in text
    db = connect_store(settings)
    assert db.trials.count_documents({"status": "done"}) == 6
    assert db.models.count_documents({"status": "done"}) == 1
    assert list(elsewhere.iterdir()) == []  # the workers read nothing from a shared disk
