"""`make dev`'s manifests (k8s/dev, what the Tiltfile deploys) on a single kind-like node, and
the Tiltfile evaluated by Tilt itself against that cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.cluster.controlplane import ControlPlane, tool_dir

from .kube import KIND_STORAGE, NAMESPACE, ROOT, Kube, Project, kind_node, running_on, wait_for

KIND = kind_node()
WORKLOADS = {"rabbitmq", "mongodb", "publisher", "worker", "collector", "dashboard"}


@pytest.fixture(scope="module")
def kind(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    kube.apply([*KIND_STORAGE, KIND])
    project = Project(tmp_path_factory.mktemp("dev"), kube)
    # As `make dev` does: a local cluster, where .env.example's passwords are accepted.
    shutil.copy(ROOT / ".env.example", project.root / ".env")
    project.make("k8s-credentials", "LOCAL_CLUSTER=1")
    yield project
    kube.delete_namespace()
    kube.run("delete", "node", KIND["metadata"]["name"])
    kube.run("delete", "storageclass", *(c["metadata"]["name"] for c in KIND_STORAGE))


def test_the_dev_overlay_applies_and_runs_on_one_node(kind: Project, kube: Kube) -> None:
    result = kube.run("apply", "--server-side", "-k", str(kind.root / "k8s" / "dev"))
    assert "PodSecurity" not in result.stderr, result.stderr
    node = KIND["metadata"]["name"]

    def all_running() -> list[dict[str, Any]] | None:
        pods = kube.pods()
        names = {p["metadata"]["labels"]["app.kubernetes.io/name"] for p in pods}
        ready = names == WORKLOADS and all(running_on(p) == node for p in pods)
        return pods if ready else None

    pods = wait_for("every dev pod Running on the kind node", all_running, timeout_s=180)
    assert sum(p["metadata"]["labels"]["app.kubernetes.io/name"] == "worker" for p in pods) == 2
    for claim in kube.items("pvc", "-n", NAMESPACE):
        assert claim["status"]["phase"] == "Bound"
        assert claim["spec"]["storageClassName"] == "standard"
    for doc in kind.rendered("dev"):
        if doc["kind"] != "Namespace":
            kube.get(f"{doc['kind']}/{doc['metadata']['name']}", "-n", NAMESPACE)


def test_tilt_evaluates_the_tiltfile_offline(
    kind: Project, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """Tilt's own evaluation: no extension to fetch, every builtin as Tilt defines it."""
    # The context the Tiltfile insists on, pointing at this suite's API server.
    config = json.loads(control_plane.kubeconfig.read_text())
    config["contexts"][0]["name"] = config["current-context"] = "kind-tunefleet"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    # The repository as a clone has it, plus the git-ignored credentials `make k8s-credentials`
    # wrote into the suite's project: the Tiltfile renders k8s/dev, which needs them.
    repo = tmp_path / "repo"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    for written in (kind.root / "k8s").rglob("credentials/*"):
        if written.name == ".gitignore":
            continue
        target = repo / written.relative_to(kind.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(written, target)
    result = subprocess.run(
        [str(tool_dir("tilt") / "tilt"), "alpha", "tiltfile-result", "-f", "Tiltfile"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)},
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(result.stdout)
    assert evaluated["Error"] is None
    manifests = {m["Name"]: m for m in evaluated["Manifests"]}
    assert set(manifests) == WORKLOADS | {"tests", "demo", "uncategorized"}
    for name in ("rabbitmq", "mongodb"):
        assert manifests[name]["Labels"] == {"infra": "infra"}
    for service in ("publisher", "worker", "collector"):
        base, image = manifests[service]["ImageTargets"]
        assert base["selector"] == f"tunefleet-{service}-base"
        assert base["BuildDetails"]["target"] == service
        assert base["BuildDetails"]["args"] == ["VENV_OWNER=10001:10001"]
        # The service image: the restart wrapper on top of its base, rerun after each sync.
        assert image["selector"] == f"tunefleet-{service}"
        dockerfile = image["BuildDetails"]["dockerfileContents"].splitlines()
        assert dockerfile[1] == f"FROM tunefleet-{service}-base"
        module = f"tunefleet_{service}"
        restart = "/app/.venv/.restart-proc"
        assert image["overrideCommand"]["command"] == [
            "/tilt-restart-wrapper", f"--watch_file={restart}", "python", "-m", module
        ]  # fmt: skip
        live = image["LiveUpdateSpec"]
        assert [e["args"] for e in live["execs"]] == [["sh", "-c", f"date > {restart}"]]
        site = "/app/.venv/lib/python3.11/site-packages/"
        # Its own code and the two packages every service image carries (not the client's).
        shared = {site + "tunefleet_contract", site + "tunefleet_runtime"}
        assert {s["containerPath"] for s in live["syncs"]} == {site + module} | shared
        assert manifests[service]["Labels"] == {"services": "services"}
