"""The compose stack runs the whole system: healthy, a study from the host's CLI with
scikit-learn's scores, an adaptive study, an uploaded table refitted, the e2e suite inside."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from tunefleet.client import Client
from tunefleet_publisher.planner import expand
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker.datasets import from_frame
from tunefleet_worker.training import library_data, make_estimator

from tests.containers.conftest import DASHBOARD, SERVICES, WORKERS, ComposeStack
from tests.support.reference import gridsearch_means, params_key
from tests.support.studies import (
    THREE_LIBRARIES_SPEC,
    THREE_LIBRARIES_TRIALS,
    three_libraries_reference,
)
from tests.support.tables import mixed_table


def test_every_service_is_healthy_with_the_workers_asked_for(
    compose_stack: ComposeStack,
) -> None:
    health = compose_stack.wait_healthy()
    assert set(health) == {"rabbitmq", "mongodb", *SERVICES, DASHBOARD}
    assert len(health["worker"]) == WORKERS
    singles = ("rabbitmq", "mongodb", "collector", "publisher", DASHBOARD)
    assert all(len(health[s]) == 1 for s in singles)


def test_a_three_library_study_from_the_host_cli_scores_as_gridsearchcv(
    compose_stack: ComposeStack, tmp_path: Path
) -> None:
    spec_file = tmp_path / "study.yaml"
    spec_file.write_text(yaml.safe_dump({**THREE_LIBRARIES_SPEC, "name": "compose-e2e"}))
    cli = shutil.which("tunefleet", path=str(Path(sys.executable).parent))
    assert cli is not None
    result = subprocess.run(
        [cli, "submit", str(spec_file), "--wait", "--timeout", "420"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **compose_stack.shell_env()},
        capture_output=True,
        text=True,
        check=False,
        timeout=480,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    study_id = re.search(r"\b(compose-e2e-[0-9a-f]{12})\b", result.stdout + result.stderr)
    assert study_id, result.stdout
    study = study_id.group(1)

    db = compose_stack.db()
    docs = list(db.trials.find({"study_id": study}))
    expected = {t.trial_id for t in expand(parse_spec(THREE_LIBRARIES_SPEC), study)}
    assert len(expected) == THREE_LIBRARIES_TRIALS
    assert sorted(d["_id"] for d in docs) == sorted(expected)  # one each, none missing
    reference = three_libraries_reference()
    for doc in docs:
        assert doc["status"] == "done", doc
        key = (doc["library"], params_key(doc["params"]))
        assert abs(doc["score"] - reference[key]) <= 1e-9, key
    # Trained in the worker containers (a worker is named `<hostname>-<pid>`), several of them.
    hostnames = {
        compose_stack.inspect(c)["Config"]["Hostname"] for c in compose_stack.containers("worker")
    }
    workers = {d["worker"].rsplit("-", 1)[0] for d in docs}
    assert workers <= hostnames and len(workers) >= 2, (workers, hostnames)


ADAPTIVE = {
    "name": "compose-adaptive",
    "dataset": "breast_cancer",
    "metric": "roc_auc",
    "cv": {"folds": 3, "seed": 4},
    "search": {
        "xgboost": {
            "fixed": {"n_estimators": 8},
            "tpe": {
                "n_trials": 6,
                "max_in_flight": 3,
                "n_startup": 3,
                "space": {
                    "learning_rate": {"loguniform": [0.01, 0.5]},
                    "max_depth": {"int": [2, 6]},
                },
            },
        }
    },
}
UPLOADED = {
    "xgboost": {"fixed": {"n_estimators": 8, "tree_method": "hist"}, "grid": {"max_depth": [2, 4]}},
    "catboost": {"fixed": {"iterations": 8}, "grid": {"depth": [2, 4]}},
}


def test_an_adaptive_study_and_an_uploaded_table_with_a_refit(
    compose_stack: ComposeStack,
) -> None:
    client = Client(compose_stack.settings())
    db = compose_stack.db()
    adaptive = client.submit(ADAPTIVE)
    frame = mixed_table()  # strings, categories, NaNs: fetched by workers from the store
    spec = {
        "name": "compose-upload",
        "dataset": {"kind": "upload", "target": "target"},
        "metric": "roc_auc",
        "cv": {"folds": 3, "seed": 5},
        "search": UPLOADED,
    }
    uploaded = client.submit(spec, data=frame)

    status = adaptive.wait(progress=False, timeout_s=240)
    assert (status.n_trials, status.done, status.failed) == (6, 6, 0)
    planned = {d["_id"] for d in db.planned.find({"study_id": str(adaptive)})}
    assert planned == {d["_id"] for d in db.trials.find({"study_id": str(adaptive)})}
    # After its start-up trials, each of TPE's decisions was made on a result.
    assert sum(1 for d in db.planned.find({"study_id": str(adaptive)}) if d.get("after")) == 3

    status = uploaded.wait(progress=False, timeout_s=180)
    assert (status.done, status.failed) == (4, 0)
    data = from_frame(frame, "target")
    docs = list(db.trials.find({"study_id": str(uploaded)}))
    for library, part in UPLOADED.items():
        reference = gridsearch_means(
            library, data, part["fixed"], part["grid"], metric="roc_auc", folds=3, seed=5
        )
        for doc in (d for d in docs if d["library"] == library):
            assert abs(doc["score"] - reference[params_key(doc["params"])]) <= 1e-9, doc

    # The best trial refitted on the whole table in a worker container, back here natively,
    # predicting exactly as a local fit does.
    best = client.best(uploaded, n=1)[0]
    estimator = uploaded.best_model(timeout_s=120)
    view = library_data(data, best.library)
    local = make_estimator(best.library, data.task, dict(best.params), 1, view.categorical)
    local.fit(view.X, view.y)
    unseen = uploaded.prepare(mixed_table(rows=100, seed=99))
    assert np.array_equal(estimator.predict_proba(unseen), local.predict_proba(unseen))


def _e2e_here() -> int:
    """How many tests the e2e suite has that do not need this machine's own programs."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not host", "tests/e2e"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TUNEFLEET_E2E_IN_CONTAINER": "0"},
    )
    return len([line for line in result.stdout.splitlines() if "::" in line])


# The whole e2e suite (`make test` runs it there rather than on the host): 2 to 3 minutes here.
@pytest.mark.timeout(1200)
def test_make_compose_test_runs_the_e2e_suite_in_the_tests_container(
    compose_stack: ComposeStack,
) -> None:
    expected = _e2e_here()
    result = compose_stack.stack.run_tests(capture=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    summary = result.stdout.strip().splitlines()[-1]  # pytest's; compose writes to stderr
    # Every one of them ran there and passed: none skipped, none failed.
    assert re.fullmatch(rf"(=+ )?{expected} passed, \d+ deselected in [^,]*", summary), summary
