"""k8s/gke on real nodes: the kind cluster's control plane plays GKE's default pool and its worker
the spot pool (GKE's labels and taint). Workers land only on spot, everything else off it; a
drain of the spot node in the middle of a study (GKE's preemption, as the voluntary eviction
it is) makes each worker hand its trial back within the grace period, and the study ends with
every trial stored exactly once.

The overlay is k8s/gke itself, with what a release adds (k8s/release: here the images Tilt built
and loaded, and the workers' egress to this cluster's API server) and what fits kind's nodes
(two CPUs each: smaller CPU and memory requests), written into the checkout copy."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from tunefleet.client import Client

from deploy.cluster.controlplane import tool_dir
from deploy.release import policies
from tests.kind.conftest import DEFAULT_POOL, NAMESPACE, SPOT, Lab, db, wait_for
from tests.kind.test_dev import assert_exactly_once, noop_study

SERVICES = ("publisher", "worker", "collector")
# Each Deployment's image (the dashboard runs the client's).
IMAGES = {**{s: f"tunefleet-{s}" for s in SERVICES}, "dashboard": "tunefleet-client"}
# What kind's two-CPU nodes hold (k8s/gke asks 7 CPUs and 24 GiB per worker).
FIT_KIND = [
    {"apiVersion": "apps/v1", "kind": kind_, "metadata": {"name": name, "namespace": NAMESPACE},
     "spec": {"template": {"spec": {"containers": [{"name": name, "resources": resources}]}}}}
    for kind_, name, resources in (
        ("StatefulSet", "rabbitmq", {"requests": {"cpu": "100m"}}),
        ("StatefulSet", "mongodb", {"requests": {"cpu": "100m"}}),
        ("Deployment", "publisher", {"requests": {"cpu": "100m"}}),
        ("Deployment", "collector", {"requests": {"cpu": "100m"}}),
        ("Deployment", "worker", {"requests": {"cpu": "100m", "memory": "512Mi"},
                                  "limits": {"cpu": "1", "memory": "2Gi"}}),
    )
]  # fmt: skip
PREMIUM_RWO = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "premium-rwo", "annotations": {"defaultVolumeType": "local"}},
    "provisioner": "rancher.io/local-path",
    "volumeBindingMode": "WaitForFirstConsumer",
    "reclaimPolicy": "Delete",
}


def kubectl_apply(lab: Lab, docs: list[dict[str, Any]] | str) -> None:
    text = docs if isinstance(docs, str) else "\n---\n".join(json.dumps(d) for d in docs)
    result = subprocess.run(
        [*kubectl_command(lab), "apply", "--server-side", "--force-conflicts",
         "--field-manager=tunefleet", "-f", "-"],
        input=text, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def kubectl_command(lab: Lab) -> list[str]:
    return [
        "kubectl",
        "--context",
        lab.cluster.context,
        "--kubeconfig",
        str(lab.cluster.kubeconfig),
    ]


@pytest.fixture(scope="module")
def gke(tilt_ci: Lab) -> Iterator[Lab]:
    lab = tilt_ci
    images = {
        service: lab.json("-n", NAMESPACE, "get", "deployment", service)["spec"]["template"][
            "spec"]["containers"][0]["image"]
        for service in IMAGES
    }  # fmt: skip
    lab.kubectl("delete", "namespace", NAMESPACE, "--wait=true", timeout=300)
    release = lab.repo / "k8s" / "release"
    release.mkdir(exist_ok=True)
    # Where the `kubernetes` Service leads (deploy/release.py reads the same with the default
    # kubeconfig, which is not this cluster's).
    kubernetes = lab.json("get", "endpoints", "kubernetes", "-n", "default")
    found = [(a["ip"], p["port"]) for s in kubernetes["subsets"] for a in s["addresses"]
             for p in s["ports"]]  # fmt: skip
    (release / "policies.yaml").write_text(
        "\n---\n".join(json.dumps(d) for d in policies("gke", found, []))
    )
    (release / "kustomization.yaml").write_text(
        yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1alpha1",
            "kind": "Component",
            "resources": ["policies.yaml"],
            "images": [{"name": name, "newName": images[s].rpartition(":")[0],
                        "newTag": images[s].rpartition(":")[2]} for s, name in IMAGES.items()],
        })
    )  # fmt: skip
    overlay = lab.repo / "k8s" / "kind-gke"
    overlay.mkdir()
    (overlay / "fit.yaml").write_text("\n---\n".join(json.dumps(d) for d in FIT_KIND))
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": ["../gke"], "patches": [{"path": "fit.yaml"}]})
    )
    rendered = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
    standins = yaml.safe_load(lab.config.read_text())["images"]
    for official, standin in standins.items():
        rendered = rendered.replace(official, standin)
    kubectl_apply(lab, [PREMIUM_RWO])
    # GKE's managed Prometheus serves PodMonitoring: its CRD, as make cluster-install keeps it.
    lab.kubectl("apply", "--server-side", "-f", str(tool_dir("gmp")))
    kubectl_apply(lab, rendered)
    for workload in ("statefulset/rabbitmq", "statefulset/mongodb", "deployment/collector",
                     "deployment/publisher", "deployment/dashboard"):  # fmt: skip
        lab.kubectl("-n", NAMESPACE, "rollout", "status", workload, "--timeout=300s", timeout=320)
    lab.kubectl("-n", NAMESPACE, "scale", "deployment/worker", "--replicas=4")
    wait_for("four Ready workers", lambda: len(lab.ready("worker")) == 4, 300)
    yield lab


def node_labels(lab: Lab, name: str) -> dict[str, str]:
    labels: dict[str, str] = lab.json("get", "node", name)["metadata"]["labels"]
    return labels


def test_workers_run_on_spot_only_and_everything_else_on_the_default_pool(gke: Lab) -> None:
    for app in ("rabbitmq", "mongodb", "collector", "publisher", "dashboard", "worker"):
        pods = gke.ready(app)
        assert pods, app
        for pod in pods:
            labels = node_labels(gke, pod["spec"]["nodeName"])
            pool = SPOT if app == "worker" else DEFAULT_POOL
            assert {k: labels.get(k) for k in pool} == pool, (app, labels)
            if app != "worker":
                assert "cloud.google.com/gke-spot" not in labels


def test_draining_the_spot_node_hands_the_trials_back_and_loses_nothing(gke: Lab) -> None:
    lab = gke
    spot = f"{lab.cluster.name}-worker"
    # Longer than the workers' grace period (TUNEFLEET_GRACE_PERIOD_S=10 of 15 s): a worker
    # evicted in the middle of one hands it back; another worker resumes it.
    trials = 8
    # Every state the worker pods go through, to a file (a pipe nobody reads fills up and
    # stops the watch).
    watched = lab.repo.parent / "drain-watch.json"
    with watched.open("w") as sink:
        watch = subprocess.Popen(
            [*kubectl_command(lab), "-n", NAMESPACE, "get", "pods", "-l",
             "app.kubernetes.io/name=worker", "--watch", "-o", "json"],
            stdout=sink, text=True,
        )  # fmt: skip
    try:
        with lab.forwarded() as settings:
            client = Client(settings)
            study = str(client.submit(noop_study("kind-drain", trials, 14.0)))
            store = db(settings)
            wait_for("every worker busy", lambda: len(store.starts.distinct(
                "worker", {"study_id": study})) == 4, 180)  # fmt: skip
            evicted = {p["metadata"]["name"] for p in lab.ready("worker")}
            drained = subprocess.run(
                [*kubectl_command(lab), "drain", spot, "--ignore-daemonsets",
                 "--delete-emptydir-data", "--timeout=120s"],
                capture_output=True, text=True, check=False, timeout=180,
            )  # fmt: skip
            assert drained.returncode == 0, drained.stderr
            # The workers have nowhere to go until the pool has a node again (GKE's autoscaler
            # would add one): their trials wait in the queue.
            lab.kubectl("uncordon", spot)
            status = client.wait(study, timeout_s=600)
            assert (status.done, status.failed) == (trials, 0)
            docs = assert_exactly_once(settings, study, trials)
    finally:
        watch.terminate()
        watch.wait(30)
    output = watched.read_text()
    handed_back = [d for d in docs if d["attempts"] >= 2]
    assert handed_back, "no trial was handed back by an evicted worker"
    assert {d["worker"] for d in docs} - evicted  # finished by the workers that replaced them
    # Each evicted worker exited by itself (0) within its grace period, not killed (137).
    decoder = json.JSONDecoder()
    final: dict[str, dict[str, Any]] = {}
    position = 0
    while (position := _skip_space(output, position)) < len(output):
        try:
            pod, position = decoder.raw_decode(output, position)
        except json.JSONDecodeError:
            break  # the last object, cut off when the watch was stopped
        for container in pod["status"].get("containerStatuses", []):
            if "terminated" in container.get("state", {}):
                final[pod["metadata"]["name"]] = container["state"]["terminated"]
    assert evicted <= set(final), (evicted, set(final))
    for name in evicted:
        assert final[name]["exitCode"] == 0, (name, final[name])


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position
