"""The package layers: import-linter's contracts hold, and decoding pulls in nothing heavy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert tool is not None, "import-linter is a dev dependency"
    result = subprocess.run(
        [tool, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_decoding_a_study_message_loads_no_broker_store_or_scikit_learn() -> None:
    # A spec with a metric and a parameter the catalogue would refuse: decoding checks
    # structure only, so it neither refuses it nor loads scikit-learn to look.
    program = """
import sys
from tunefleet_contract.messages import StudyRequest
body = (
    b'{"schema_version":1,"kind":"study.request","study_id":"s-1","submitted_at":1.0,'
    b'"spec":{"dataset":"iris","metric":"roc_auc","search":{"xgboost":{"grid":'
    b'{"max_depht":[1]}}}}}'
)
request = StudyRequest.decode(body)
assert request.spec.metric == "roc_auc"
heavy = sorted(m for m in ("sklearn", "pika", "pymongo", "yaml") if m in sys.modules)
print(",".join(heavy))
"""
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
