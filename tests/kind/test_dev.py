"""`make dev`'s loop on kind: `tilt ci` brings k8s/dev up, a study scores as GridSearchCV, the
dashboard serves it through a port-forward, a code edit reaches the running worker through
Tilt's live update, `make scale N=4` gives four workers that all train, and deleting a busy
worker, the broker or the database loses nothing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from tunefleet.client import Client
from tunefleet_dev import kind
from tunefleet_publisher.planner import expand
from tunefleet_runtime.validation import parse_spec

from tests.kind.conftest import NAMESPACE, Lab, db, wait_for
from tests.support.reference import params_key
from tests.support.studies import (
    THREE_LIBRARIES_SPEC,
    THREE_LIBRARIES_TRIALS,
    three_libraries_reference,
)

APPS = ("rabbitmq", "mongodb", "collector", "publisher", "worker")


def noop_study(name: str, trials: int, sleep_s: float) -> dict[str, Any]:
    """`trials` trials of the test library that only sleeps: one per message (chunk_size 1)."""
    return {
        "name": name,
        "dataset": "iris",
        "cv": {"folds": 2, "seed": 1},
        "chunk_size": 1,
        "search": {
            "noop": {
                "fixed": {"sleep_s": sleep_s},
                "grid": {"score": [i / 100 for i in range(trials)]},
            }
        },
    }


def assert_exactly_once(settings: Any, study: str, trials: int) -> list[dict[str, Any]]:
    """Every planned trial stored once, done, with its own score: lost 0, duplicated 0."""
    store = db(settings)
    docs = list(store.trials.find({"study_id": study}))
    ids = [d["_id"] for d in docs]
    planned = {d["_id"] for d in store.planned.find({"study_id": study})}
    assert len(planned) == trials
    assert len(ids) - len(set(ids)) == 0  # duplicated 0
    assert planned - set(ids) == set()  # lost 0
    assert set(ids) - planned == set()
    assert all(d["status"] == "done" and d["score"] == d["params"]["score"] for d in docs)
    return docs


def test_tilt_ci_brings_every_resource_up_with_the_stand_ins_on_the_default_pool(
    tilt_ci: Lab,
) -> None:
    lab = tilt_ci
    config = yaml.safe_load(lab.config.read_text())
    for app in APPS:
        count = 2 if app == "worker" else 1
        pods = wait_for(f"{count} {app} Ready", lambda a=app, n=count: len(lab.ready(a)) == n
                        and lab.ready(a), 300)  # fmt: skip
        for pod in pods:
            # k8s/dev tolerates no spot taint: everything on the control plane (default pool).
            assert pod["spec"]["nodeName"] == f"{lab.cluster.name}-control-plane"
            (image,) = {c["image"] for c in pod["spec"]["containers"]}
            if app in ("rabbitmq", "mongodb"):
                # The stand-in the generated configuration names, else the official image.
                assert image in set(config["images"].values()) or "@sha256:" in image, image
            else:
                assert re.fullmatch(rf"tunefleet-{app}:tilt-[0-9a-f]+", image), image
    # The Erlang cookie as RabbitMQ wrote it (fsGroupChangePolicy: test_the_broker_... below).
    mode = lab.kubectl("-n", NAMESPACE, "exec", "rabbitmq-0", "--", "stat", "-c", "%a",
                       "/var/lib/rabbitmq/.erlang.cookie")  # fmt: skip
    assert mode.strip() == "400"
    # Tilt's log reads as written: no Secret value of the local cluster redacted in it.
    log = (lab.repo.parent / "tilt-ci.log").read_text()
    assert "tunefleet-worker" in log and "[redacted secret" not in log


def test_a_three_library_study_through_port_forwards_scores_as_gridsearchcv(
    tilt_ci: Lab, tmp_path: Path
) -> None:
    spec_file = tmp_path / "study.yaml"
    spec_file.write_text(yaml.safe_dump({**THREE_LIBRARIES_SPEC, "name": "kind-e2e"}))
    cli = shutil.which("tunefleet", path=str(Path(sys.executable).parent))
    assert cli is not None
    with tilt_ci.forwarded() as settings:
        result = subprocess.run(
            [cli, "submit", str(spec_file), "--wait", "--timeout", "900"],
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                 "RABBITMQ_URL": str(settings.rabbitmq_url),
                 "MONGODB_URL": str(settings.mongodb_url)},
            capture_output=True,
            text=True,
            check=False,
            timeout=1000,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        found = re.search(r"\b(kind-e2e-[0-9a-f]{12})\b", result.stdout + result.stderr)
        assert found, result.stdout
        study = found.group(1)
        docs = list(db(settings).trials.find({"study_id": study}))
    expected = {t.trial_id for t in expand(parse_spec(THREE_LIBRARIES_SPEC), study)}
    assert len(expected) == THREE_LIBRARIES_TRIALS
    assert sorted(d["_id"] for d in docs) == sorted(expected)
    reference = three_libraries_reference()
    for doc in docs:
        assert doc["status"] == "done", doc
        assert abs(doc["score"] - reference[(doc["library"], params_key(doc["params"]))]) <= 1e-9
    # Trained by the worker pods (a worker is named after its pod: the downward API).
    pods = {p["metadata"]["name"] for p in tilt_ci.pods("worker")}
    assert {d["worker"] for d in docs} <= pods


def _http(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    data = b"" if method == "POST" else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def test_the_dashboard_pod_is_ready_and_serves_the_studies_through_a_port_forward(
    tilt_ci: Lab,
) -> None:
    """Its own users (the broker's definitions, the database's users.js), the client image
    Tilt built, a probe on /readyz; reached only by `kubectl port-forward svc/dashboard`."""
    lab = tilt_ci
    (pod,) = wait_for("the dashboard Ready", lambda: lab.ready("dashboard"), 300)
    (container,) = pod["spec"]["containers"]
    assert re.fullmatch(r"tunefleet-client:tilt-[0-9a-f]+", container["image"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["spec"]["nodeName"] == f"{lab.cluster.name}-control-plane"
    with lab.forwarded() as settings:
        client = Client(settings)
        study = str(client.submit(noop_study("kind-dashboard", 4, 0.0)))
        status = client.wait(study, timeout_s=300)
        assert (status.done, status.failed) == (4, 0)
    with lab.port_forward("dashboard", 8765) as port:
        code, page = _http(port, "/")
        assert code == 200 and 'data-page="studies"' in page
        code, body = _http(port, "/readyz")
        assert code == 200 and json.loads(body)["events"] is True, body
        code, body = _http(port, "/api/studies")
        assert code == 200
        (row,) = [s for s in json.loads(body)["studies"] if s["study_id"] == study]
        assert (row["done"], row["failed"]) == (4, 0)
        # No token Secret in the dev overlay: read-only, cancel refused.
        code, body = _http(port, f"/api/studies/{study}/cancel", "POST")
        assert code == 403 and "TUNEFLEET_DASHBOARD_TOKEN" in body


def test_an_edit_reaches_the_running_worker_through_live_update(tilt_ci: Lab) -> None:
    """`tilt up` in the copy; a worker module changes; Tilt syncs it into the running pods and
    restarts the process there (no new image, no new pod)."""
    lab = tilt_ci
    before = {p["metadata"]["name"]: p for p in lab.ready("worker")}
    _, argv = kind.tilt_command(["up", "--context", lab.cluster.context, "--port", "0", "--stream"])
    log = lab.repo.parent / "tilt-up.log"
    with log.open("w") as output:
        up = subprocess.Popen(argv, cwd=lab.repo, env=kind.tilt_env(lab.cluster, lab.config),
                              stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        # Tilt has taken the running pods over when it says the worker is up to date.
        wait_for("tilt up to settle",
                 lambda: re.search(r"worker\s+│\s+DONE IN", log.read_text()), 600)  # fmt: skip
        time.sleep(10)
        token = uuid.uuid4().hex
        module = lab.repo / "services/worker/src/tunefleet_worker/__init__.py"
        module.write_text(
            module.read_text()
            + f"\nimport logging as _logging\n\n_logging.getLogger(__name__).warning("
            f"'live update {token}')\n"
        )
        site = "/app/.venv/lib/python3.11/site-packages/tunefleet_worker/__init__.py"

        def synced() -> bool:
            for name in before:
                found = lab.cluster.kubectl("-n", NAMESPACE, "exec", name, "--", "grep", "-c",
                                            token, site)  # fmt: skip
                if found.returncode != 0:
                    return False
            return True

        wait_for("the edit in every worker pod", synced, 300)
        # The restart wrapper reran the service: the new code's line is in the pods' logs.
        wait_for(
            "the workers restarted on the new code",
            lambda: all(
                f"live update {token}" in lab.kubectl("-n", NAMESPACE, "logs", name)
                for name in before
            ),
            120,
        )
    finally:
        up.terminate()
        up.wait(60)
    after = {p["metadata"]["name"]: p for p in lab.ready("worker")}
    assert set(after) == set(before)  # the same pods: synced, not redeployed
    for name, pod in after.items():
        restarts = pod["status"]["containerStatuses"][0]["restartCount"]
        assert restarts == before[name]["status"]["containerStatuses"][0]["restartCount"]


def test_make_scale_gives_four_workers_that_each_take_trials(tilt_ci: Lab) -> None:
    lab = tilt_ci
    kubectl = f"kubectl --context {lab.cluster.context} --kubeconfig {lab.cluster.kubeconfig}"
    subprocess.run(["make", "--no-print-directory", "scale", "N=4", f"KUBECTL={kubectl}"],
                   cwd=lab.repo, check=True, capture_output=True)  # fmt: skip
    pods = wait_for("four Ready workers", lambda: len(lab.ready("worker")) == 4 and
                    lab.ready("worker"), 300)  # fmt: skip
    names = {p["metadata"]["name"] for p in pods}
    with lab.forwarded() as settings:
        client = Client(settings)
        study = str(client.submit(noop_study("kind-scale", 16, 2.0)))
        status = client.wait(study, timeout_s=300)
        assert (status.done, status.failed) == (16, 0)
        docs = assert_exactly_once(settings, study, 16)
    assert {d["worker"] for d in docs} == names  # each of the four trained


def test_deleting_a_busy_worker_pod_loses_and_duplicates_nothing(tilt_ci: Lab) -> None:
    lab = tilt_ci
    with lab.forwarded() as settings:
        client = Client(settings)
        study = str(client.submit(noop_study("kind-delete-worker", 8, 4.0)))
        store = db(settings)
        start = wait_for("a worker to start a trial",
                         lambda: store.starts.find_one({"study_id": study}), 120)  # fmt: skip
        busy = str(start["worker"])
        lab.kubectl("-n", NAMESPACE, "delete", "pod", busy, "--wait=false")
        status = client.wait(study, timeout_s=300)
        assert (status.done, status.failed) == (8, 0)
        assert_exactly_once(settings, study, 8)
    assert busy not in {p["metadata"]["name"] for p in lab.pods("worker")}


def test_the_broker_and_the_database_come_back_on_their_volumes(tilt_ci: Lab) -> None:
    """Both stateful pods deleted in the middle of a study: every result lands, the earlier
    studies are still in the database (its volume), and RabbitMQ starts again on its volume
    (its Erlang cookie still 0400: the crash loop fsGroupChangePolicy prevents)."""
    lab = tilt_ci
    with lab.forwarded() as settings:
        before = db(settings).trials.count_documents({})
        client = Client(settings)
        study = str(client.submit(noop_study("kind-stateful", 12, 3.0)))
        wait_for("a trial stored", lambda: db(settings).trials.count_documents(
            {"study_id": study}) > 0, 120)  # fmt: skip
    # Both at once, as a node's loss would take them: each comes back on its own volume.
    stateful = ("rabbitmq-0", "mongodb-0")
    uids = {p: lab.json("-n", NAMESPACE, "get", "pod", p)["metadata"]["uid"] for p in stateful}
    lab.kubectl("-n", NAMESPACE, "delete", "pod", *stateful)
    for pod, uid in uids.items():
        wait_for(f"{pod} back and Ready", lambda p=pod, u=uid: (
            (found := lab.json("-n", NAMESPACE, "get", "pod", p))["metadata"]["uid"] != u
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in found["status"].get("conditions", []))), 300)  # fmt: skip
    mode = lab.kubectl("-n", NAMESPACE, "exec", "rabbitmq-0", "--", "stat", "-c", "%a",
                       "/var/lib/rabbitmq/.erlang.cookie")  # fmt: skip
    assert mode.strip() == "400"
    restarts = lab.json("-n", NAMESPACE, "get", "pod", "rabbitmq-0")["status"]
    assert restarts["containerStatuses"][0]["restartCount"] == 0
    with lab.forwarded() as settings:
        status = Client(settings).wait(study, timeout_s=600)
        assert (status.done, status.failed) == (12, 0)
        assert_exactly_once(settings, study, 12)
        assert db(settings).trials.count_documents({}) >= before + 12
