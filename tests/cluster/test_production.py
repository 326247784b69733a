"""k8s/gke-production, deployed by `make deploy-gke OVERLAY=gke-production` to a live API server
on GKE-like nodes with the RabbitMQ cluster operator's and GKE's managed Prometheus's CRDs.

Neither operator runs here, so no broker pod starts: what is checked is that everything the
overlay holds is accepted as written (the RabbitmqCluster under its CRD's schema), refers to
what exists, and that the services run with their URLs pointed at the broker cluster and at a
MongoDB outside the cluster, each with users of their own, and may reach nothing else.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from .gkecluster import (
    REGISTRY,
    SERVICES,
    TAG,
    assert_every_object_in_the_namespace,
    component,
    container,
    gke_cluster,
    pool_of,
    selected,
    wait_all_running,
)
from .kube import ENV_FILE, NAMESPACE, Kube, Project, digest_of

MONGODB = "mongodb+srv://tunefleet.abcde.mongodb.net/?retryWrites=true&w=majority"
MONGODB_CIDR = "10.20.0.0/24"
DEPLOY = (
    "deploy-gke",
    "PROJECT=demo-project",
    f"REGISTRY={REGISTRY}",
    f"TAG={TAG}",
    "OVERLAY=gke-production",
)


@pytest.fixture(scope="module")
def production(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    project = Project(tmp_path_factory.mktemp("production"), kube)
    (project.root / ".env").write_text(ENV_FILE + f"MONGODB_ADDRESS={MONGODB}\n")
    with gke_cluster(kube, project) as ready:
        yield ready


def _secret(kube: Kube, name: str) -> dict[str, str]:
    data = kube.get("secret", name, "-n", NAMESPACE)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def test_production_needs_the_address_of_its_database(production: Project, kube: Kube) -> None:
    result = production.make(*DEPLOY, check=False)
    assert result.returncode != 0
    assert "set MONGODB_CIDR" in result.stderr
    assert kube.run("get", "namespace", NAMESPACE, check=False).returncode != 0


def test_production_deploys_with_a_broker_cluster_and_an_outside_database(
    production: Project, kube: Kube
) -> None:
    result = production.make(*DEPLOY, f"MONGODB_CIDR={MONGODB_CIDR}")
    assert "PodSecurity" not in result.stderr, result.stderr
    docs = production.rendered("gke-production")
    assert_every_object_in_the_namespace(kube, docs)
    assert not [d for d in docs if d["kind"] == "StatefulSet"], "no broker or database of ours"
    pods = wait_all_running(kube, set(SERVICES) - {"worker"})
    pools = pool_of(kube)
    for pod in pods:
        expected = "spot" if component(pod) == "worker" else "default-pool"
        assert pools[pod["spec"]["nodeName"]] == expected
        spec = container(pod)
        # The dashboard runs the client image.
        name = "client" if component(pod) == "dashboard" else component(pod)
        image = f"{REGISTRY}/tunefleet-{name}:{TAG}"
        assert spec["image"] == f"{REGISTRY}/tunefleet-{name}@{digest_of(image)}"


def test_the_broker_cluster_is_as_written_and_refers_to_what_exists(
    production: Project, kube: Kube
) -> None:
    cluster = kube.get("rabbitmqcluster", "rabbitmq", "-n", NAMESPACE)["spec"]
    assert cluster["replicas"] == 3
    assert cluster["resources"]["requests"]["memory"] == cluster["resources"]["limits"]["memory"]
    assert "load_definitions" in cluster["rabbitmq"]["additionalConfig"]
    admin = _secret(kube, cluster["secretBackend"]["externalSecret"]["name"])
    assert {"username", "password", "default_user.conf"} <= set(admin)
    assert admin["username"] == "admin"
    template = cluster["override"]["statefulSet"]["spec"]["template"]["spec"]
    for volume in template["volumes"]:
        if "configMap" in volume:
            data = kube.get("configmap", volume["configMap"]["name"], "-n", NAMESPACE)["data"]
            assert "consumer_timeout" in data["rabbitmq.conf"]
        else:
            definitions = _secret(kube, volume["secret"]["secretName"])["definitions.json"]
            assert "tunefleet-worker" in definitions
    budget = kube.get("pdb", "rabbitmq", "-n", NAMESPACE)["spec"]
    assert budget["maxUnavailable"] == 1


def test_the_services_use_their_own_users_on_both(production: Project, kube: Kube) -> None:
    for service in SERVICES:
        spec = container(kube.get("deployment", service, "-n", NAMESPACE)["spec"]["template"])
        (name,) = [s["secretRef"]["name"] for s in spec["envFrom"] if "secretRef" in s]
        urls = _secret(kube, name)
        broker, store = urlsplit(urls["RABBITMQ_URL"]), urlsplit(urls["MONGODB_URL"])
        # The operator's client Service is named after the cluster: `rabbitmq`, as before.
        assert (broker.hostname, broker.port) == ("rabbitmq", 5672)
        assert (store.scheme, store.hostname) == ("mongodb+srv", "tunefleet.abcde.mongodb.net")
        assert broker.username == store.username == f"tunefleet-{service}"


def test_the_services_may_reach_the_database_range_and_the_broker_only(
    production: Project, kube: Kube
) -> None:
    wait_all_running(kube, set(SERVICES) - {"worker"})
    policies = {p["metadata"]["name"]: p["spec"] for p in kube.items("netpol", "-n", NAMESPACE)}
    store = policies["mongodb-egress"]
    # The services and the dashboard (its read-only user).
    clients = {*SERVICES, "dashboard"}
    assert selected(kube, store["podSelector"]) == clients - _missing_workers(kube)
    (rule,) = store["egress"]
    assert rule == {"to": [{"ipBlock": {"cidr": MONGODB_CIDR}}], "ports": [
        {"port": 27017, "protocol": "TCP"}
    ]}  # fmt: skip
    api = policies["kube-apiserver"]["podSelector"]["matchExpressions"][0]
    assert api["values"] == ["worker", "rabbitmq"], "the broker's nodes find each other there"
    nodes = policies["rabbitmq-nodes"]
    assert nodes["policyTypes"] == ["Ingress", "Egress"]
    monitors = {m["metadata"]["name"] for m in kube.items("podmonitoring", "-n", NAMESPACE)}
    assert monitors == {"tunefleet-services", "rabbitmq"}


def _missing_workers(kube: Kube) -> set[str]:
    """The worker count starts at one: present unless scaled to 0."""
    return set() if kube.pods("app.kubernetes.io/name=worker") else {"worker"}


def test_a_second_production_deploy_changes_nothing(production: Project, kube: Kube) -> None:
    def versions() -> dict[str, Any]:
        docs = [d for d in production.rendered("gke-production") if "namespace" in d["metadata"]]
        refs = [f"{d['kind']}/{d['metadata']['name']}" for d in docs]
        live = kube.items("-n", NAMESPACE, *refs)
        return {
            f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in live
        }

    before = versions()
    result = production.make(*DEPLOY, f"MONGODB_CIDR={MONGODB_CIDR}")
    assert not [line for line in result.stdout.splitlines() if line.endswith(" configured")]
    assert versions() == before
