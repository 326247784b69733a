"""A GKE-like cluster for the live-API suite: its node pools, the CRDs of what GKE and the
operators would run, and what tests/cluster/test_gke.py and test_production.py ask of pods."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deploy.cluster.controlplane import tool_dir

from .kube import GKE_STORAGE, NAMESPACE, POOL, Kube, NodePool, Project, running_on, wait_for

POOLS = (
    NodePool("default-pool", "e2-standard-8", cpus=8, memory_gib=32, count=2),
    # docs/deploy.md's spot pool at its --max-nodes: two 7-CPU workers fit on each node.
    NodePool("spot", "n2d-standard-16", cpus=16, memory_gib=64, count=20, spot=True),
)
REGISTRY = "europe-west4-docker.pkg.dev/demo-project/tunefleet"
TAG = "0123456789ab"
SERVICES = ("publisher", "worker", "collector")
# The images make builds and a release pins: the services' and the client's (the dashboard's).
IMAGES = (*SERVICES, "client")
# The pods that reach the broker and the database: the services and the dashboard.
CLIENTS = (*SERVICES, "dashboard")
STATEFUL = ("rabbitmq", "mongodb")
# Where the `kubernetes` Service leads on a private GKE cluster: its control plane's endpoint.
# (This suite's API server keeps no endpoints of its own: it listens on 127.0.0.1.)
API_SERVER_ENDPOINT = ("172.16.0.2", 443)
# Namespaces that exist on a GKE cluster with these add-ons.
NAMESPACES = ("keda", "gmp-system", "rabbitmq-system")


@contextmanager
def gke_cluster(kube: Kube, project: Project) -> Iterator[Project]:
    """The node pools, storage classes and CRDs; everything removed again afterwards."""
    nodes = [node for pool in POOLS for node in pool.nodes()]
    kube.apply([*GKE_STORAGE, *nodes])
    # KEDA, GKE's managed Prometheus and the RabbitMQ cluster operator are not running (nothing
    # here would run them); their APIs and namespaces are, so that what the overlays hold is
    # checked against the CRDs' schemas when it is applied.
    for tool in ("keda", "gmp", "rabbitmq-operator"):
        kube.run("apply", "--server-side", "-f", str(tool_dir(tool)))
    kube.apply(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in NAMESPACES]
    )
    ip, port = API_SERVER_ENDPOINT
    kube.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default"},
                "subsets": [
                    {"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port}]}
                ],
            }
        ]
    )
    names = {node["metadata"]["name"] for node in nodes}
    wait_for("the GKE nodes to be Ready", lambda: names <= ready_nodes(kube))
    try:
        yield project
    finally:
        kube.delete_namespace()
        for namespace in NAMESPACES:
            kube.delete_namespace(namespace)
        kube.run("delete", "node", *sorted(names), "--wait=false")
        kube.run("delete", "storageclass", *(c["metadata"]["name"] for c in GKE_STORAGE))
        kube.run("delete", "endpoints", "kubernetes", "-n", "default", "--ignore-not-found")
        kube.run(
            "delete", "validatingadmissionpolicy,validatingadmissionpolicybinding",
            "-l", "app.kubernetes.io/part-of=tunefleet", "--ignore-not-found",
        )  # fmt: skip


def ready_nodes(kube: Kube) -> set[str]:
    return {
        node["metadata"]["name"]
        for node in kube.items("nodes")
        for c in node["status"].get("conditions", [])
        if c["type"] == "Ready" and c["status"] == "True"
    }


def pool_of(kube: Kube) -> dict[str, str]:
    """Node name -> its node pool."""
    return {n["metadata"]["name"]: n["metadata"]["labels"][POOL] for n in kube.items("nodes")}


def component(pod: dict[str, Any]) -> str:
    name: str = pod["metadata"]["labels"]["app.kubernetes.io/name"]
    return name


def terminating(pod: dict[str, Any]) -> bool:
    return "deletionTimestamp" in pod["metadata"]


def wait_workers(kube: Kube, running: int, pending: int = 0) -> list[dict[str, Any]]:
    """Wait until exactly `running` workers are Running and Ready and `pending` are Pending."""

    def probe() -> list[dict[str, Any]] | None:
        pods = [p for p in kube.pods("app.kubernetes.io/name=worker") if not terminating(p)]
        up = [p for p in pods if running_on(p)]
        waiting = [p for p in pods if p["status"].get("phase") == "Pending"]
        if len(up) == running and len(waiting) == pending and len(pods) == running + pending:
            return pods
        return None

    return wait_for(f"{running} running and {pending} pending workers", probe, timeout_s=240)


def wait_all_running(kube: Kube, expected: set[str]) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        pods = [p for p in kube.pods() if not terminating(p)]
        names = {component(p) for p in pods}
        if names >= expected and all(map(running_on, pods)):
            return pods
        return None

    return wait_for("every pod Running and Ready", probe, timeout_s=240)


def selector_string(selector: dict[str, Any]) -> str:
    """A LabelSelector as kubectl's -l syntax."""
    terms = [f"{k}={v}" for k, v in selector.get("matchLabels", {}).items()]
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], ",".join(expr.get("values", []))
        terms.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }[op]
        )
    return ",".join(terms)


def selected(kube: Kube, selector: dict[str, Any], namespace: str = NAMESPACE) -> set[str]:
    """The components (app.kubernetes.io/name) of the pods a pod selector selects."""
    pods = kube.pods(selector_string(selector), namespace)
    return {component(p) for p in pods if not terminating(p)}


def assert_every_object_in_the_namespace(kube: Kube, docs: list[dict[str, Any]]) -> None:
    cluster_scoped = {"Namespace", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in cluster_scoped:
            assert "namespace" not in doc["metadata"], f"{name} is cluster-scoped"
            kube.get(name)
            continue
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{name} renders without it"
        live = kube.run("get", name, "-n", NAMESPACE, check=False)
        assert live.returncode == 0, f"{name} is not in {NAMESPACE}: {live.stderr}"
        stray = kube.run("get", name, "-n", "default", check=False)
        assert stray.returncode != 0, f"{name} is in default"


def container(pod: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = pod["spec"]["containers"][0]
    return found
