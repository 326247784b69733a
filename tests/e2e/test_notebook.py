"""The example notebook runs top to bottom against the real services and pipeline."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from tunefleet_dev.devservices import Pipeline
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_executes(
    service_env: dict[str, str], pipeline: Pipeline, settings: ClientSettings, tmp_path: Path
) -> None:
    pipeline.start_all(workers=2)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits this process's environment: service_env put the URLs there.
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # The live progress bar was drawn (and updated) through IPython's display machinery.
    assert any(
        o.output_type == "display_data" and "<progress" in o.data.get("text/html", "")
        for o in outputs
    )
    db = connect_store(settings)
    assert db.trials.count_documents({"status": "done"}) == 6
    assert (tmp_path / "quickstart-report.html").stat().st_size > 1_000_000
