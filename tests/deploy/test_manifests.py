"""k8s/: every overlay builds, validates against the Kubernetes schemas, and meets the policies."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from tunefleet_contract.topology import Topology
from tunefleet_dev.devservices import DEFAULT_CONSUMER_TIMEOUT_MS

from .conftest import OVERLAYS, ROOT, SERVICES, data_of, find, workloads

K8S_VERSION = "1.37.0"
SPOT = "cloud.google.com/gke-spot"
# Custom resources have no schema in kubernetes-validate; their fields are checked below.
CUSTOM = {"keda.sh/v1alpha1"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schema(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    assert len(workloads(docs)) == 5
    for doc in docs:
        if doc["apiVersion"] in CUSTOM:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_manifest_fails_validation(rendered: dict[str, list[dict[str, Any]]]) -> None:
    worker = find(rendered["base"], "Deployment", "worker")
    broken = {**worker, "spec": {**worker["spec"], "replicas": "many"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["spec"]["template"]["spec"])


@pytest.mark.parametrize("overlay", ["base", "gke", "gke-keda"])
def test_policies_every_container(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    for doc in workloads(rendered[overlay]):
        pod = _pod(doc)
        name = doc["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][part]), (name, part)
            assert "livenessProbe" in container and "readinessProbe" in container, name
            image = container["image"]
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest", f"{name}: image {image} needs a fixed tag"
            assert re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"


def test_service_probes_use_the_observability_endpoints(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["base"]
    port = int(data_of(docs, "ConfigMap", "tunefleet-common")["TUNEFLEET_METRICS_PORT"])
    for service in SERVICES:
        container = _pod(find(docs, "Deployment", service))["containers"][0]
        assert container["ports"] == [{"name": "metrics", "containerPort": port}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


@pytest.mark.parametrize("overlay", ["gke", "gke-keda"])
def test_gke_workers_only_on_spot_and_stateful_parts_never(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for doc in workloads(rendered[overlay]):
        pod = _pod(doc)
        tolerates_spot = any(t.get("key") == SPOT for t in pod.get("tolerations", []))
        if doc["metadata"]["name"] == "worker":
            assert pod["nodeSelector"] == {SPOT: "true"}
            assert tolerates_spot
            continue
        assert not tolerates_spot, doc["metadata"]["name"]
        assert SPOT not in pod.get("nodeSelector", {})
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        for term in terms["nodeSelectorTerms"]:
            assert {"key": SPOT, "operator": "DoesNotExist"} in term["matchExpressions"]
    for kind_name in ("rabbitmq", "mongodb"):
        claims = find(rendered[overlay], "StatefulSet", kind_name)["spec"]["volumeClaimTemplates"]
        assert claims[0]["spec"]["storageClassName"] == "premium-rwo"
    # The worker count is `make scale`'s (or KEDA's): a re-apply must not reset it.
    assert "replicas" not in find(rendered[overlay], "Deployment", "worker")["spec"]


@pytest.mark.parametrize("overlay", ["base", "gke"])
def test_worker_shutdown_fits_in_the_termination_grace_period(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    grace_s = float(data_of(docs, "ConfigMap", "tunefleet-worker")["TUNEFLEET_GRACE_PERIOD_S"])
    termination_s = _pod(find(docs, "Deployment", "worker"))["terminationGracePeriodSeconds"]
    # The worker finishes or abandons its trial within grace_s, then closes the connection;
    # the kubelet's SIGKILL must come later, and GKE spot preemption allows about 15 s.
    assert grace_s + 3 <= termination_s <= 15


def test_rabbitmq_consumer_timeout_is_the_projects_everywhere(
    rendered: dict[str, list[dict[str, Any]]], compose: dict[str, Any]
) -> None:
    conf = (ROOT / "k8s/base/config/rabbitmq.conf").read_text()
    assert re.search(rf"^consumer_timeout = {DEFAULT_CONSUMER_TIMEOUT_MS}$", conf, re.M)
    for overlay in ("base", "gke"):
        docs = rendered[overlay]
        assert data_of(docs, "ConfigMap", "rabbitmq-config")["rabbitmq.conf"] == conf
        mounts = _pod(find(docs, "StatefulSet", "rabbitmq"))["containers"][0]["volumeMounts"]
        assert {
            "name": "config",
            "mountPath": "/etc/rabbitmq/conf.d/20-tunefleet.conf",
            "subPath": "rabbitmq.conf",
            "readOnly": True,
        } in mounts
    assert (
        "./k8s/base/config/rabbitmq.conf:/etc/rabbitmq/conf.d/20-tunefleet.conf:ro"
        in compose["services"]["rabbitmq"]["volumes"]
    )


def test_stateful_parts_have_volumes_and_disruption_budgets(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["base"]
    for name in ("rabbitmq", "mongodb"):
        claims = find(docs, "StatefulSet", name)["spec"]["volumeClaimTemplates"]
        assert claims[0]["metadata"]["name"] == "data"
        pdb = find(docs, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        assert pdb["spec"]["minAvailable"] == 1
    mongo = _pod(find(docs, "StatefulSet", "mongodb"))["containers"][0]
    (source,) = mongo["envFrom"]
    secret = find(docs, "Secret", "mongodb-credentials")
    assert source["secretRef"]["name"] == secret["metadata"]["name"]
    assert set(data_of(docs, "Secret", "mongodb-credentials")) == {
        "MONGO_INITDB_ROOT_USERNAME",
        "MONGO_INITDB_ROOT_PASSWORD",
    }, "without a root user the mongo image starts without authentication"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_only_the_services_reach_the_broker_and_only_the_collector_the_database(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["base"]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = find(docs, "NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in workloads(docs)
    }

    def allowed(target: str, port: int) -> set[str]:
        who: set[str] = set()
        for policy in policies:
            spec = policy["spec"]
            if not _selects(spec["podSelector"], pods[target]):
                continue
            for rule in spec.get("ingress", []):
                if not any(p["port"] == port for p in rule.get("ports", [])):
                    continue
                for peer in rule.get("from", []):
                    assert "ipBlock" not in peer
                    if "namespaceSelector" in peer:
                        who.add("*other namespaces*")
                    else:
                        who |= {n for n, lab in pods.items() if _selects(peer["podSelector"], lab)}
        return who

    assert allowed("rabbitmq", 5672) == set(SERVICES)
    assert allowed("rabbitmq", 15672) == set()
    assert allowed("mongodb", 27017) == {"collector", "publisher", "worker"}


def test_keda_scales_workers_on_ready_and_unacked_messages(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["gke-keda"]
    scaled = find(docs, "ScaledObject", "worker")["spec"]
    assert scaled["scaleTargetRef"] == {"name": "worker"}
    namespace = data_of(docs, "ConfigMap", "tunefleet-common")["TUNEFLEET_NAMESPACE"]
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "rabbitmq"
    meta = trigger["metadata"]
    assert meta["queueName"] == Topology(namespace, 10).trials_queue
    # Only the management API (http) counts unacked messages: the ones busy workers hold.
    assert meta["protocol"] == "http" and meta["excludeUnacknowledged"] == "false"
    auth = find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])["spec"]
    (ref,) = auth["secretTargetRef"]
    host = data_of(docs, "Secret", ref["name"])[ref["key"]]
    assert host.startswith("http://") and ":15672/" in host
    assert find(docs, "NetworkPolicy", "rabbitmq-management-from-keda")


def test_no_credentials_are_committed() -> None:
    tracked = [p for p in (ROOT / "k8s").rglob("*") if p.is_file()]
    for path in tracked:
        if "credentials" in path.parts:
            assert path.name == ".gitignore" or not _is_tracked(path), path


def _is_tracked(path: Path) -> bool:
    import subprocess

    result = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(path)], cwd=ROOT, capture_output=True
    )
    return result.returncode == 0
