"""k8s/: every overlay builds, validates against the Kubernetes schemas, and meets the policies."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from tunefleet_contract.topology import Topology
from tunefleet_dev.devservices import DEFAULT_CONSUMER_TIMEOUT_MS
from tunefleet_runtime.settings import WorkerSettings

from .conftest import (
    GKE,
    OVERLAYS,
    ROOT,
    SERVICES,
    container_env,
    copy_k8s,
    data_of,
    find,
    kubectl,
    workloads,
)

K8S_VERSION = "1.37.0"
SPOT = "cloud.google.com/gke-spot"
# Custom resources have no schema in kubernetes-validate; their fields are checked below, and
# tests/cluster applies them to an API server that has their CRDs.
CUSTOM = {"keda.sh/v1alpha1", "monitoring.googleapis.com/v1", "rabbitmq.com/v1beta1"}
# The third-party images, by the digest their tag had when last built (docs/deploy.md says
# where each digest was found).
RABBITMQ_IMAGE = (
    "rabbitmq:3.13.7-management"
    "@sha256:e582c0bc7766f3342496d8485efb5a1df782b5ce3886ad017e2eaae442311f69"
)
MONGO_IMAGE = "mongo:7.0.14@sha256:0032d2ca20db5fa34926f196c8a43b74e34ed239a7f2453ff1505b6f12ba8ea6"
GIB = 1 << 30


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["spec"]["template"]["spec"])


def _containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (doc["metadata"]["name"], container)
        for doc in workloads(docs)
        for container in _pod(doc)["containers"]
    ]


def quantity(value: str | int) -> int:
    """A Kubernetes quantity in bytes (or units)."""
    text = str(value)
    factors = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 10**3, "M": 10**6}
    for suffix, factor in factors.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schema(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    # The three services and the dashboard, and the broker and the database where in-cluster.
    in_cluster_state = 4 if overlay == "gke-production" else 6
    assert len(workloads(docs)) == in_cluster_state
    for doc in docs:
        if doc["apiVersion"] in CUSTOM:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_manifest_fails_validation(rendered: dict[str, list[dict[str, Any]]]) -> None:
    worker = find(rendered["gke"], "Deployment", "worker")
    broken = {**worker, "spec": {**worker["spec"], "replicas": "many"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", GKE)
def test_policies_every_container(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    for doc in workloads(rendered[overlay]):
        pod = _pod(doc)
        name = doc["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        # Only the worker has a token, for its own deletion cost (see the deletion-cost test).
        assert pod["automountServiceAccountToken"] is (name == "worker"), name
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][part]), (name, part)
            assert "livenessProbe" in container and "readinessProbe" in container, name


# -- 12: each service its own users; no example passwords -------------------------------------


def _url_users(docs: list[dict[str, Any]], service: str) -> dict[str, str]:
    from urllib.parse import urlsplit

    container = _pod(find(docs, "Deployment", service))["containers"][0]
    (secret,) = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
    urls = data_of(docs, "Secret", secret)
    return {key: urlsplit(url).username or "" for key, url in urls.items()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_has_its_own_broker_and_database_users(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    seen: dict[str, set[str]] = {"RABBITMQ_URL": set(), "MONGODB_URL": set()}
    for service in (*SERVICES, "dashboard"):
        users = _url_users(docs, service)
        assert set(users) == set(seen), f"{service} gets {set(users)}"
        for key, user in users.items():
            assert user == f"tunefleet-{service}", (service, key, user)
            seen[key].add(user)
    # Nobody but people (through a port-forward) logs in as an administrator.
    admins = {"admin", "root"}  # conftest.ENV_FILE's RABBITMQ_USER and MONGO_USER
    assert not (seen["RABBITMQ_URL"] | seen["MONGODB_URL"]) & admins


@pytest.mark.parametrize("overlay", ["dev", "gke", "gke-production"])
def test_the_broker_knows_each_user_with_the_least_it_needs(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    import json

    docs = rendered[overlay]
    definitions = json.loads(data_of(docs, "Secret", "rabbitmq-definitions")["definitions.json"])
    users = {u["name"]: u for u in definitions["users"]}
    assert users["admin"]["tags"] == ["administrator"]
    assert "password" not in json.dumps(definitions["users"]).replace("password_hash", "")
    permissions = {p["user"]: p for p in definitions["permissions"]}
    topology = Topology("tunefleet")
    for service in SERVICES:
        assert users[f"tunefleet-{service}"]["tags"] == []
        granted = permissions[f"tunefleet-{service}"]
        for kind in ("configure", "write", "read"):
            # Nothing outside the namespace's own names: not amq.*, not another installation's.
            assert not re.fullmatch(granted[kind], "amq.default"), (service, kind)
            assert not re.fullmatch(granted[kind], "other.trials"), (service, kind)
    read = {s: permissions[f"tunefleet-{s}"]["read"] for s in SERVICES}
    # The dead letters kept for `tunefleet dead-letters` are people's; the collector's copy and
    # the control stream belong to the collector and the workers.
    for service in SERVICES:
        assert not re.fullmatch(read[service], topology.dead_letter_queue)
    assert [s for s in SERVICES if re.fullmatch(read[s], topology.control_queue)] == ["worker"]
    collector_only = topology.dead_letter_collector_queue
    assert [s for s in SERVICES if re.fullmatch(read[s], collector_only)] == ["collector"]
    # The dashboard: follows the events through a server-named queue of its own, lists the dead
    # letters, publishes cancels (events) and resumes (study requests); nothing of the pipeline.
    assert users["tunefleet-dashboard"]["tags"] == []
    dashboard = permissions["tunefleet-dashboard"]
    watch = "amq.gen-JzTY20BRgKO-HjmUJj0wLg"
    for kind in ("configure", "write", "read"):
        assert re.fullmatch(dashboard[kind], watch), kind
        assert not re.fullmatch(dashboard[kind], "amq.default"), kind
        assert not re.fullmatch(dashboard[kind], "other.trials"), kind
    for queue in (topology.dead_letter_queue, topology.events_exchange):
        assert re.fullmatch(dashboard["read"], queue), queue
    # (Declaring a queue that dead-letters needs read on it: every user that declares the
    # topology has that on the pipeline's quorum queues; not on these two.)
    for queue in (topology.control_queue, topology.dead_letter_collector_queue):
        assert not re.fullmatch(dashboard["read"], queue), queue
    for exchange in (topology.events_exchange, topology.studies_exchange):
        assert re.fullmatch(dashboard["write"], exchange), exchange
    for service in SERVICES:  # a server-named queue is the dashboard's alone
        assert not re.fullmatch(permissions[f"tunefleet-{service}"]["configure"], watch)
    # KEDA: the management API's view of the queues, and no use of any.
    assert users["tunefleet-keda"]["tags"] == ["management"]
    keda = permissions["tunefleet-keda"]
    assert (keda["configure"], keda["write"], keda["read"]) == ("^$", "^$", "^$")


def test_keda_reads_queues_as_its_own_user(rendered: dict[str, list[dict[str, Any]]]) -> None:
    from urllib.parse import urlsplit

    docs = rendered["gke-keda"]
    scaled = find(docs, "ScaledObject", "worker")["spec"]
    (trigger,) = scaled["triggers"]
    auth = find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])["spec"]
    (ref,) = auth["secretTargetRef"]
    host = urlsplit(data_of(docs, "Secret", ref["name"])[ref["key"]])
    assert (host.scheme, host.port, host.username) == ("http", 15672, "tunefleet-keda")


@pytest.mark.parametrize("overlay", ["dev", "gke"])
def test_mongodb_creates_the_services_users_at_every_start(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    mongo = _pod(find(docs, "StatefulSet", "mongodb"))
    container = mongo["containers"][0]
    hook = " ".join(container["lifecycle"]["postStart"]["exec"]["command"])
    assert "mongosh --nodb --quiet --file /etc/tunefleet/users.js" in hook
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/tunefleet"]
    (volume,) = [v for v in mongo["volumes"] if v["name"] == mount["name"]]
    script = data_of(docs, "ConfigMap", volume["configMap"]["name"])["users.js"]
    assert script == (ROOT / "k8s/components/mongodb/users.js").read_text()
    (source,) = container["envFrom"]
    env = data_of(docs, "Secret", source["secretRef"]["name"])
    assert env["MONGO_INITDB_ROOT_USERNAME"] == "root", "without it the image runs without auth"
    assert (
        env["MONGODB_DATABASE"] == data_of(docs, "ConfigMap", "tunefleet-store")["MONGODB_DATABASE"]
    )
    assert [pair.split("=")[0] for pair in env["TUNEFLEET_MONGODB_USERS"].split(",")] == [
        f"tunefleet-{s}" for s in SERVICES
    ]
    # The dashboard reads only (users.js gives the readers `read`).
    readers = env["TUNEFLEET_MONGODB_READERS"].split(",")
    assert [pair.split("=")[0] for pair in readers] == ["tunefleet-dashboard"]


# -- 13: KEDA within the pool; scale-down spares busy workers ---------------------------------


def documented_spot_pool() -> tuple[str, int]:
    """The machine type and --max-nodes of docs/deploy.md's spot node pool."""
    docs = (ROOT / "docs" / "deploy.md").read_text()
    command = docs[docs.index("gcloud container node-pools create spot") :].split("\n\n", 1)[0]
    machine = re.search(r"--machine-type=(\S+)", command)
    nodes = re.search(r"--max-nodes=(\d+)", command)
    assert machine and nodes, command
    return machine.group(1), int(nodes.group(1))


def test_keda_scales_to_what_the_spot_pool_holds(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    from tests.cluster.kube import gke_allocatable

    machine, nodes = documented_spot_pool()
    assert machine == "n2d-standard-16"  # 16 vCPU, 64 GiB
    cpu, memory = gke_allocatable(16, 64)
    docs = rendered["gke-keda"]
    requests = _pod(find(docs, "Deployment", "worker"))["containers"][0]["resources"]["requests"]
    per_node = min(
        int(cpu.removesuffix("m")) // (int(requests["cpu"]) * 1000),
        quantity(memory) // quantity(requests["memory"]),
    )
    assert per_node == 2
    assert find(docs, "ScaledObject", "worker")["spec"]["maxReplicaCount"] == nodes * per_node


@pytest.mark.parametrize("overlay", GKE)
def test_workers_may_set_their_own_deletion_cost_and_nothing_else(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    pod = _pod(find(docs, "Deployment", "worker"))
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("worker", True)
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "worker", "namespace": "tunefleet"}
    ]
    policy = find(docs, "ValidatingAdmissionPolicy", "tunefleet-worker-deletion-cost")
    assert "namespace" not in policy["metadata"], "cluster-scoped"
    (condition,) = policy["spec"]["matchConditions"]
    assert "system:serviceaccount:tunefleet:worker" in condition["expression"]
    (bound,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert bound["spec"]["policyName"] == policy["metadata"]["name"]
    assert bound["spec"]["validationActions"] == ["Deny"]
    # Everything else keeps no token at all.
    for doc in workloads(docs):
        if doc["metadata"]["name"] != "worker":
            assert _pod(doc)["automountServiceAccountToken"] is False


# -- 14: stateful pods: memory request = limit, RabbitMQ's alarm below it; budgets ------------


def _stateful_containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    found = [
        (d["metadata"]["name"], _pod(d)["containers"][0])
        for d in docs
        if d["kind"] == "StatefulSet"
    ]
    found += [(d["metadata"]["name"], d["spec"]) for d in docs if d["kind"] == "RabbitmqCluster"]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_stateful_pods_get_the_memory_they_are_limited_to(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    found = _stateful_containers(rendered[overlay])
    assert {name for name, _ in found} >= {"rabbitmq"}
    for name, container in found:
        resources = container["resources"]
        assert resources["requests"]["memory"] == resources["limits"]["memory"], name


def rabbitmq_memory_settings(text: str) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in re.findall(r"^([a-z_.]+) = ([0-9.]+)$", text, re.M)
        if key.startswith(("total_memory", "vm_memory"))
    }


@pytest.mark.parametrize("overlay", ["dev", "gke", "gke-keda"])
def test_rabbitmqs_memory_alarm_sits_below_its_memory(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    statefulset = _pod(find(docs, "StatefulSet", "rabbitmq"))
    container = statefulset["containers"][0]
    limit = quantity(container["resources"]["limits"]["memory"])
    files = {}
    for mount in container["volumeMounts"]:
        if mount["mountPath"].startswith("/etc/rabbitmq/conf.d/"):
            (volume,) = [v for v in statefulset["volumes"] if v["name"] == mount["name"]]
            data = data_of(docs, "ConfigMap", volume["configMap"]["name"])
            files[mount["mountPath"]] = data[mount["subPath"]]
    merged: dict[str, float] = {}
    for path in sorted(files):  # conf.d is read in name order; later files win
        merged |= rabbitmq_memory_settings(files[path])
    # As the RabbitMQ cluster operator states it: the limit less 20 % (at most 2 GiB).
    assert merged["total_memory_available_override_value"] == limit - min(limit // 5, 2 * GIB)
    watermark = merged["vm_memory_high_watermark.relative"]
    assert watermark * merged["total_memory_available_override_value"] <= 0.4 * limit
    assert "vm_memory_high_watermark.absolute" not in merged


def test_the_production_broker_alarm_is_the_in_cluster_ones(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    cluster = find(rendered["gke-production"], "RabbitmqCluster", "rabbitmq")["spec"]
    settings = rabbitmq_memory_settings(cluster["rabbitmq"]["additionalConfig"])
    assert settings == {"vm_memory_high_watermark.relative": 0.4}
    assert cluster["replicas"] == 3
    # Every quorum queue on all three nodes, also one declared before the others joined.
    config = cluster["rabbitmq"]["additionalConfig"]
    assert "quorum_queue.continuous_membership_reconciliation.enabled = true" in config
    assert "quorum_queue.continuous_membership_reconciliation.target_group_size = 3" in config


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_disruption_budget_holds_a_drain_for_ever(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    replicas = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]: d["spec"].get("replicas", 1)
        for d in [*workloads(docs), *(d for d in docs if d["kind"] == "RabbitmqCluster")]
        if "selector" in d["spec"]
    }
    replicas |= {
        d["metadata"]["name"]: d["spec"]["replicas"] for d in docs if d["kind"] == "RabbitmqCluster"
    }
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert budgets
    for pdb in budgets:
        name = pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        spec = pdb["spec"]
        allowed = (
            spec["maxUnavailable"]
            if "maxUnavailable" in spec
            else replicas[name] - spec["minAvailable"]
        )
        assert allowed >= 1, f"{name}: {replicas[name]} replica(s) and {spec}"


# -- 15: bounded scratch space ----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_emptydir_is_bounded_and_every_container_asks_for_its_disk(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for doc in workloads(rendered[overlay]):
        pod = _pod(doc)
        name = doc["metadata"]["name"]
        dirs = {v["name"]: v["emptyDir"] for v in pod["volumes"] if "emptyDir" in v}
        for volume, spec in dirs.items():
            assert "sizeLimit" in spec, f"{name}: emptyDir {volume} without a sizeLimit"
        for container in pod["containers"]:
            resources = container["resources"]
            request = quantity(resources["requests"]["ephemeral-storage"])
            limit = quantity(resources["limits"]["ephemeral-storage"])
            assert request <= limit, name
            assert limit >= sum(quantity(d["sizeLimit"]) for d in dirs.values()), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_worker_cache_fits_its_volume_and_its_request(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    env = data_of(docs, "ConfigMap", "tunefleet-worker")
    cache_dir, cache_bytes = Path(env["TUNEFLEET_CACHE_DIR"]), int(env["TUNEFLEET_CACHE_BYTES"])
    pod = _pod(find(docs, "Deployment", "worker"))
    container = pod["containers"][0]
    (mount,) = [m for m in container["volumeMounts"] if cache_dir.is_relative_to(m["mountPath"])]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    size = quantity(volume["emptyDir"]["sizeLimit"])
    # The cache's bound plus room for what is written beside it (a fetch in progress).
    assert size >= cache_bytes + GIB
    assert quantity(container["resources"]["requests"]["ephemeral-storage"]) >= size


# -- 16: images -------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", GKE)
def test_every_image_is_pinned_by_digest(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    from .conftest import REGISTRY, image_digest

    images = {name: c["image"] for name, c in _containers(rendered[overlay])}
    for service in SERVICES:
        assert images[service] == f"{REGISTRY}/tunefleet-{service}@{image_digest(service)}"
    assert images["dashboard"] == f"{REGISTRY}/tunefleet-client@{image_digest('client')}"
    if overlay != "gke-production":
        assert images["rabbitmq"] == RABBITMQ_IMAGE
        assert images["mongodb"] == MONGO_IMAGE
    else:
        cluster = find(rendered[overlay], "RabbitmqCluster", "rabbitmq")
        assert cluster["spec"]["image"] == RABBITMQ_IMAGE
    for name, container in _containers(rendered[overlay]):
        assert re.search(r"@sha256:[0-9a-f]{64}$", container["image"]), name
        # A digest names one image: nothing stale can be running under it.
        assert container["imagePullPolicy"] == "IfNotPresent", name


def test_the_third_party_images_are_pinned_wherever_they_run(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    images = {name: c["image"] for name, c in _containers(rendered["dev"])}
    assert (images["rabbitmq"], images["mongodb"]) == (RABBITMQ_IMAGE, MONGO_IMAGE)
    # The services' images in the dev loop are Tilt's to set.
    assert {images[s] for s in SERVICES} == {f"tunefleet-{s}" for s in SERVICES}


@pytest.mark.parametrize("overlay", GKE)
def test_a_gke_overlay_without_a_release_does_not_build(
    k8s_tree: Path, tmp_path: Path, overlay: str
) -> None:
    """`kubectl apply -k k8s/gke` in a clone: no release written, so nothing is deployed (it
    would have deployed images that exist in no registry)."""
    import shutil

    tree = tmp_path / "k8s"
    shutil.copytree(k8s_tree, tree)
    assert not (tree / "release" / "kustomization.yaml").exists()
    result = subprocess.run(
        [kubectl(), "kustomize", str(tree / overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "release" in result.stderr


def test_a_clone_has_no_release(tmp_path: Path) -> None:
    tree = copy_k8s(tmp_path)
    assert sorted(p.name for p in (tree / "release").iterdir()) == [".gitignore"]


# -- 17: network policies ---------------------------------------------------------------------


def _network(docs: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
    from .netpol import AROUND, Policies, workload_pods

    peers = {**workload_pods(docs), **{p.name: p for p in AROUND}}
    return Policies(docs), peers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_default_deny_covers_both_directions(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    deny = find(rendered[overlay], "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def _egress(docs: list[dict[str, Any]], source: str) -> set[tuple[str, int]]:
    """Where `source` may open connections (of the peers and ports tried)."""
    policies, peers = _network(docs)
    ports = (53, 443, 5672, 6443, 9100, 15672, 15692, 25672, 27017)
    return {
        (name, port)
        for name, peer in peers.items()
        for port in ports
        if name != source
        and policies.allows(peers[source], peer, port, "UDP" if port == 53 else "TCP")
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_pod_reaches_what_it_needs_and_nothing_else(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    dns = {("kube-dns", 53)}
    store = {("managed-mongodb", 27017)} if overlay == "gke-production" else {("mongodb", 27017)}
    api = {("api-server", 443)} if overlay in GKE else set()
    assert _egress(docs, "publisher") == dns | {("rabbitmq", 5672)} | store
    assert _egress(docs, "collector") == dns | {("rabbitmq", 5672)} | store
    assert _egress(docs, "worker") == dns | {("rabbitmq", 5672)} | store | api
    assert _egress(docs, "dashboard") == dns | {("rabbitmq", 5672)} | store
    if overlay == "gke-production":
        # Its nodes cluster among themselves and find each other through the API server.
        assert _egress(docs, "rabbitmq") == dns | api
    else:
        assert _egress(docs, "rabbitmq") == dns
        assert _egress(docs, "mongodb") == dns


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_services_reach_the_broker_and_the_database(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    policies, peers = _network(docs)

    def who(target: str, port: int) -> set[str]:
        return {
            n for n, p in peers.items() if n != target and policies.allows(p, peers[target], port)
        }

    assert who("rabbitmq", 5672) == {*SERVICES, "dashboard"}
    management = {"gke-keda": {"keda-operator"}, "gke-production": {"rabbitmq-operator"}}
    assert who("rabbitmq", 15672) == management.get(overlay, set())
    if overlay != "gke-production":
        # The collector stores results, the planner reads what a resume keeps and records its
        # decisions, the workers read uploaded datasets and store refitted models.
        # The dashboard reads the store (with its read-only user).
        assert who("mongodb", 27017) == {*SERVICES, "dashboard"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_are_open_to_the_monitoring_only(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    policies, peers = _network(docs)
    for service in SERVICES:
        scrapers = {n for n, p in peers.items() if policies.allows(p, peers[service], 9100)}
        assert scrapers == ({"gmp-collector"} if overlay in GKE else set()), service
    if overlay in GKE:
        assert policies.allows(peers["gmp-collector"], peers["rabbitmq"], 15692)
    assert not policies.allows(peers["another-namespace"], peers["worker"], 9100)
    # The dashboard has no metrics port, and nothing scrapes it.
    assert not any(policies.allows(p, peers["dashboard"], 9100) for p in peers.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_a_marked_namespace_reaches_the_dashboard(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    """Port-forward (not pod traffic) is the way in; a pod connects only from a namespace its
    operator marks for an ingress controller, and no tunefleet pod does."""
    docs = rendered[overlay]
    policies, peers = _network(docs)
    (port,) = find(docs, "Service", "dashboard")["spec"]["ports"]
    assert port["port"] == 8765 and find(docs, "Service", "dashboard")["spec"]["type"] == (
        "ClusterIP"
    )
    reach = {n for n, p in peers.items() if policies.allows(p, peers["dashboard"], 8765)}
    assert reach == {"ingress-controller"}
    assert not policies.allows(peers["ingress-controller"], peers["dashboard"], 9100)
    assert not policies.allows(peers["ingress-controller"], peers["worker"], 9100)


def test_the_dashboard_listens_on_every_address_only_by_its_configuration(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """The code's default is 127.0.0.1; the pod is told 0.0.0.0 (its ConfigMap), serves the
    Service's port, and is probed on the app's own endpoints."""
    from tunefleet_runtime.settings import DashboardSettings

    docs = rendered["gke"]
    assert DashboardSettings.model_fields["tunefleet_dashboard_host"].default == "127.0.0.1"
    env = container_env(docs, "dashboard")
    assert env["TUNEFLEET_DASHBOARD_HOST"] == "0.0.0.0"
    assert "TUNEFLEET_DASHBOARD_TOKEN" not in env, "no token Secret rendered: read-only"
    container = _pod(find(docs, "Deployment", "dashboard"))["containers"][0]
    assert container["command"] == ["tunefleet", "dashboard"]
    assert container["ports"] == [
        {"name": "http", "containerPort": int(env["TUNEFLEET_DASHBOARD_PORT"] or 0)}
    ]
    (token,) = container["env"]
    assert token["valueFrom"]["secretKeyRef"] == {
        "name": "tunefleet-dashboard-token",
        "key": "token",
        "optional": True,
    }
    assert container["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_docs_say_who_reaches_the_database() -> None:
    """docs/deploy.md once said "only the collector" twice, while the planner and the workers
    use the store too."""
    text = " ".join((ROOT / "docs" / "deploy.md").read_text().split())
    # The two places that said so: the live-API suite's list and the static checks' list.
    old = r"(?i)mongodb: from the collector only|only the collector and the workers \(blobs"
    assert not re.search(old, text)
    assert "reach AMQP and MongoDB (the collector, the planner and the workers" in text


# -- 18: startup probes, GKE's managed Prometheus ---------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_a_startup_probe(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for name, container in _containers(rendered[overlay]):
        startup = container["startupProbe"]
        # Liveness only once started: at least as long a budget as the liveness probe gives.
        live = container["livenessProbe"]
        budget = startup["periodSeconds"] * startup["failureThreshold"]
        assert budget >= live["periodSeconds"] * live.get("failureThreshold", 3), name
        assert "initialDelaySeconds" not in live, f"{name}: the startup probe replaces the delay"


def test_service_probes_use_the_observability_endpoints(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["gke"]
    port = int(data_of(docs, "ConfigMap", "tunefleet-common")["TUNEFLEET_METRICS_PORT"])
    for service in SERVICES:
        container = _pod(find(docs, "Deployment", service))["containers"][0]
        assert container["ports"] == [{"name": "metrics", "containerPort": port}]
        assert container["startupProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


@pytest.mark.parametrize("overlay", GKE)
def test_gkes_managed_prometheus_scrapes_the_services_and_the_broker(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    from .netpol import selects, workload_pods

    docs = rendered[overlay]
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PodMonitoring"}
    pods = workload_pods(docs)
    services = monitors["tunefleet-services"]["spec"]
    assert {n for n, p in pods.items() if selects(services["selector"], p.label_map)} == set(
        SERVICES
    )
    assert services["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    broker = monitors["rabbitmq"]["spec"]
    assert {n for n, p in pods.items() if selects(broker["selector"], p.label_map)} == {"rabbitmq"}
    (endpoint,) = broker["endpoints"]
    if overlay != "gke-production":  # the operator names its port so (statefulset.go)
        ports = _pod(find(docs, "StatefulSet", "rabbitmq"))["containers"][0]["ports"]
        assert {"name": endpoint["port"], "containerPort": 15692} in ports
    for monitor in monitors.values():
        assert monitor["metadata"]["namespace"] == "tunefleet"


# -- what was there before --------------------------------------------------------------------


@pytest.mark.parametrize("overlay", GKE)
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
    if overlay == "gke-production":
        cluster = find(rendered[overlay], "RabbitmqCluster", "rabbitmq")["spec"]
        terms = cluster["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        assert {"key": SPOT, "operator": "DoesNotExist"} in terms["nodeSelectorTerms"][0][
            "matchExpressions"
        ]
        assert cluster["persistence"]["storageClassName"] == "premium-rwo"
    else:
        for kind_name in ("rabbitmq", "mongodb"):
            statefulset = find(rendered[overlay], "StatefulSet", kind_name)
            claims = statefulset["spec"]["volumeClaimTemplates"]
            assert claims[0]["spec"]["storageClassName"] == "premium-rwo"
    # The worker count is `make scale`'s (or KEDA's): a re-apply must not reset it.
    assert "replicas" not in find(rendered[overlay], "Deployment", "worker")["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_name_the_pool_their_pods_are_placed_on(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    # The cost ledger prices each result by the pool its worker names: spot exactly where the
    # nodeSelector puts workers on spot nodes (GKE), on-demand elsewhere (kind's nodes).
    docs = rendered[overlay]
    pool = container_env(docs, "worker")["TUNEFLEET_NODE_POOL"]
    on_spot = _pod(find(docs, "Deployment", "worker")).get("nodeSelector", {}).get(SPOT)
    assert pool == ("spot" if on_spot == "true" else "on-demand")
    assert (pool == "spot") == (overlay in GKE)
    assert WorkerSettings(rabbitmq_url="amqp://h", tunefleet_node_pool=pool).tunefleet_node_pool


@pytest.mark.parametrize("overlay", OVERLAYS)
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
    for overlay in OVERLAYS:
        docs = rendered[overlay]
        assert data_of(docs, "ConfigMap", "rabbitmq-config")["rabbitmq.conf"] == conf
        if overlay == "gke-production":
            spec = find(docs, "RabbitmqCluster", "rabbitmq")["spec"]["override"]["statefulSet"]
            pod = spec["spec"]["template"]["spec"]
        else:
            pod = _pod(find(docs, "StatefulSet", "rabbitmq"))
        mounts = pod["containers"][0]["volumeMounts"]
        (mount,) = [m for m in mounts if m["mountPath"] == "/etc/rabbitmq/conf.d/20-tunefleet.conf"]
        assert mount["subPath"] == "rabbitmq.conf"
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["configMap"]["name"].startswith("rabbitmq-config-")
    assert (
        "./k8s/base/config/rabbitmq.conf:/etc/rabbitmq/conf.d/20-tunefleet.conf:ro"
        in compose["services"]["rabbitmq"]["volumes"]
    )


@pytest.mark.parametrize("overlay", ["dev", "gke"])
def test_stateful_parts_have_volumes(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for name in ("rabbitmq", "mongodb"):
        claims = find(rendered[overlay], "StatefulSet", name)["spec"]["volumeClaimTemplates"]
        assert claims[0]["metadata"]["name"] == "data"


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
    assert find(docs, "NetworkPolicy", "rabbitmq-management-from-keda")


def test_no_credentials_are_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "k8s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for path in tracked:
        parts = Path(path).parts
        if "credentials" in parts or "release" in parts:
            assert Path(path).name == ".gitignore", path
