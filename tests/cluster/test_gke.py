"""`make deploy-gke`, `make scale`, `make teardown` and node drains, run for real against a live
API server on GKE-like nodes: a regular pool and a tainted spot pool, sized as GKE sizes them.

The tests run in file order on one deployment, as an operator would: deploy, redeploy, scale,
drain, KEDA, teardown and redeploy. Along the way they check, on the objects the API server
admitted, what issue 24 asked of the manifests: users of their own, a worker count within the
pool and idle workers removed first, memory and disk as asked, images by digest, network
policies both ways, startup probes and the managed Prometheus's PodMonitorings.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from tunefleet_worker.podcost import ANNOTATION, BUSY, IDLE, DeletionCost

from deploy.cluster.controlplane import ControlPlane

from .gkecluster import (
    API_SERVER_ENDPOINT,
    CLIENTS,
    IMAGES,
    REGISTRY,
    SERVICES,
    STATEFUL,
    TAG,
    assert_every_object_in_the_namespace,
    component,
    container,
    gke_cluster,
    pool_of,
    selected,
    selector_string,
    terminating,
    wait_all_running,
    wait_workers,
)
from .kube import ENV_FILE, GIB, NAMESPACE, ROOT, Kube, Project, digest_of, running_on, wait_for

DEPLOY = ("deploy-gke", "PROJECT=demo-project", f"REGISTRY={REGISTRY}", f"TAG={TAG}")
EVERYTHING = {*STATEFUL, "publisher", "collector", "dashboard"}


@pytest.fixture(scope="module")
def gke(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    with gke_cluster(kube, Project(tmp_path_factory.mktemp("gke"), kube)) as project:
        yield project


def resource_versions(kube: Kube, project: Project, overlay: str = "gke") -> dict[str, str]:
    """kind/name -> resourceVersion of every object the release applies."""
    docs = [d for d in project.rendered(overlay) if "namespace" in d["metadata"]]
    refs = [f"{d['kind']}/{d['metadata']['name']}" for d in docs]
    live = kube.items("-n", NAMESPACE, *refs)
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in live}


def secret_values(kube: Kube, name: str) -> dict[str, str]:
    data = kube.get("secret", name, "-n", NAMESPACE)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def keda_maximum(project: Project) -> int:
    (scaled,) = [d for d in project.rendered("gke-keda") if d["kind"] == "ScaledObject"]
    maximum: int = scaled["spec"]["maxReplicaCount"]
    return maximum


# -- the tests, in the order an operator goes --------------------------------------------------


def test_env_file_is_git_ignored() -> None:
    """docs/deploy.md has real passwords put in .env; `git add .` must not take them."""
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", ".env"], cwd=ROOT, check=False
    )
    assert result.returncode == 0, ".env is not in .gitignore"


def test_a_gke_overlay_without_a_release_deploys_nothing(gke: Project, kube: Kube) -> None:
    """`kubectl apply -k k8s/gke` in a clone once deployed tunefleet-*:0.1.0, which no
    registry has: without `make gke-release` there is nothing to apply."""
    gke.make("k8s-credentials")
    for overlay in ("gke", "gke-keda", "gke-production"):
        result = kube.run(
            "apply", "--server-side", "-k", str(gke.root / "k8s" / overlay), check=False
        )
        assert result.returncode != 0, overlay
        assert "release" in result.stderr, result.stderr
    assert kube.run("get", "namespace", NAMESPACE, check=False).returncode != 0


def test_deploy_gke_refuses_the_example_passwords(gke: Project, kube: Kube) -> None:
    env = gke.root / ".env"
    shutil.copy(ROOT / ".env.example", env)
    try:
        result = gke.make(*DEPLOY, check=False)
    finally:
        env.write_text(ENV_FILE)
    assert result.returncode != 0
    assert "RABBITMQ_PASSWORD is .env.example's" in result.stderr
    assert gke.recorded() == [], "nothing built, pushed or deployed"
    assert kube.run("get", "namespace", NAMESPACE, check=False).returncode != 0


def test_deploy_gke_builds_pushes_applies_and_rolls_out(gke: Project, kube: Kube) -> None:
    result = gke.make(*DEPLOY)
    assert "PodSecurity" not in result.stderr, result.stderr
    calls = gke.recorded()
    assert calls[0][:4] == ["gcloud", "container", "clusters", "get-credentials"]
    images = [f"{REGISTRY}/tunefleet-{s}:{TAG}" for s in IMAGES]
    builds = [c for c in calls if c[:2] == ["docker", "build"]]
    assert [c[c.index("-t") + 1] for c in builds] == images
    for build, service in zip(builds, IMAGES, strict=True):
        assert build[build.index("--platform") + 1] == "linux/amd64"
        assert build[build.index("--target") + 1] == service
        # The bases tunefleet_dev.images chose (the recorder has every image: the official).
        assert "PYTHON_IMAGE=python:3.11.11-slim-bookworm" in build
    pushes = [c for c in calls if c[:2] == ["docker", "push"]]
    assert [c[2] for c in pushes] == images
    assert calls.index(pushes[0]) > calls.index(builds[-1]), "pushed before every image was built"
    # The digests are asked for once pushed, and deployed as the registry gave them.
    inspected = [
        c for c in calls if c[:3] == ["docker", "image", "inspect"] and "RepoDigests" in c[4]
    ]
    assert [c[-1] for c in inspected] == images
    assert calls.index(inspected[0]) > calls.index(pushes[-1])
    deployments = (*SERVICES, "dashboard")  # the dashboard runs the client image
    for service, image in zip(deployments, images, strict=True):
        deployment = kube.get("deployment", service, "-n", NAMESPACE)
        spec = container(deployment["spec"]["template"])
        assert spec["image"] == f"{image.rsplit(':', 1)[0]}@{digest_of(image)}", service
        assert spec["imagePullPolicy"] == "IfNotPresent"
    assert_every_object_in_the_namespace(kube, gke.rendered("gke"))


def test_pods_run_on_their_pools(gke: Project, kube: Kube) -> None:
    pools = pool_of(kube)
    for pod in wait_all_running(kube, EVERYTHING):
        pool = pools[pod["spec"]["nodeName"]]
        expected = "spot" if component(pod) == "worker" else "default-pool"
        assert pool == expected, f"{pod['metadata']['name']} on {pool}"


def test_services_have_the_pods_as_endpoints(gke: Project, kube: Kube) -> None:
    wait_all_running(kube, EVERYTHING)
    for service in kube.items("services", "-n", NAMESPACE):
        name = service["metadata"]["name"]
        pods = kube.pods(selector_string({"matchLabels": service["spec"]["selector"]}))
        expected = {p["status"]["podIP"] for p in pods if running_on(p)}
        assert expected, f"no running pod behind {name}"

        def addresses(name: str = name, expected: set[str] = expected) -> set[str] | None:
            endpoints = kube.get("endpoints", name, "-n", NAMESPACE)
            found = {a["ip"] for s in endpoints.get("subsets", []) for a in s.get("addresses", [])}
            return found if found == expected else None

        wait_for(f"endpoints of {name}", addresses)


def test_each_service_logs_in_as_itself(gke: Project, kube: Kube) -> None:
    """Issue 24, 12: the services once shared RabbitMQ's administrator and MongoDB's root."""
    for service in CLIENTS:
        spec = container(kube.get("deployment", service, "-n", NAMESPACE)["spec"]["template"])
        (secret,) = [s["secretRef"]["name"] for s in spec["envFrom"] if "secretRef" in s]
        urls = secret_values(kube, secret)
        for variable in ("RABBITMQ_URL", "MONGODB_URL"):
            assert urlsplit(urls[variable]).username == f"tunefleet-{service}", variable
    # The broker imports its users (hashes only) at start; MongoDB creates its at start.
    broker = kube.get("statefulset", "rabbitmq", "-n", NAMESPACE)["spec"]["template"]["spec"]
    (volume,) = [v for v in broker["volumes"] if v["name"] == "definitions"]
    definitions = json.loads(
        secret_values(kube, volume["secret"]["secretName"])["definitions.json"]
    )
    assert {u["name"] for u in definitions["users"]} == {
        "admin",
        *(f"tunefleet-{s}" for s in (*CLIENTS, "keda")),
    }
    assert "password" not in {key for u in definitions["users"] for key in u}
    database = container(kube.get("statefulset", "mongodb", "-n", NAMESPACE)["spec"]["template"])
    assert "users.js" in " ".join(database["lifecycle"]["postStart"]["exec"]["command"])


def test_network_policies_select_the_pods_they_mean(gke: Project, kube: Kube) -> None:
    everything = {component(p) for p in wait_all_running(kube, EVERYTHING)}
    assert everything == {*STATEFUL, *CLIENTS}
    policies = {p["metadata"]["name"]: p["spec"] for p in kube.items("netpol", "-n", NAMESPACE)}
    # Default deny, both ways, for every pod; names for every pod.
    deny = policies["default-deny"]
    assert selected(kube, deny["podSelector"]) == everything
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    (dns,) = policies["dns"]["egress"]
    assert selected(kube, policies["dns"]["podSelector"]) == everything
    assert selected(kube, dns["to"][0]["podSelector"], "kube-system") == set()  # none here
    assert dns["to"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
    }
    # The services out to the broker and the database, and in again on the other side.
    out = policies["services-egress"]
    assert selected(kube, out["podSelector"]) == set(CLIENTS)
    assert [selected(kube, rule["to"][0]["podSelector"]) for rule in out["egress"]] == [
        {"rabbitmq"},
        {"mongodb"},
    ]
    (amqp,) = policies["rabbitmq"]["ingress"]
    assert selected(kube, policies["rabbitmq"]["podSelector"]) == {"rabbitmq"}
    assert selected(kube, amqp["from"][0]["podSelector"]) == set(CLIENTS)
    assert [p["port"] for p in amqp["ports"]] == [5672]
    (store,) = policies["mongodb"]["ingress"]
    assert selected(kube, policies["mongodb"]["podSelector"]) == {"mongodb"}
    # The collector, the planner and the workers (docs/deploy.md says so too), and the dashboard.
    assert selected(kube, store["from"][0]["podSelector"]) == set(CLIENTS)
    # The dashboard: in from a marked namespace only (none here), out as the services.
    (page,) = policies["dashboard"]["ingress"]
    assert selected(kube, policies["dashboard"]["podSelector"]) == {"dashboard"}
    assert page["from"] == [
        {"namespaceSelector": {"matchLabels": {"tunefleet.io/reaches-dashboard": "true"}}}
    ]
    # The workers out to the API server, at the address the `kubernetes` Service leads to.
    api = policies["kube-apiserver"]
    assert selected(kube, api["podSelector"]) == {"worker"}
    endpoints = kube.get("endpoints", "kubernetes", "-n", "default")["subsets"][0]
    (rule,) = api["egress"]
    assert rule["to"] == [{"ipBlock": {"cidr": f"{endpoints['addresses'][0]['ip']}/32"}}]
    assert rule["ports"] == [{"port": endpoints["ports"][0]["port"], "protocol": "TCP"}]
    assert (endpoints["addresses"][0]["ip"], rule["ports"][0]["port"]) == API_SERVER_ENDPOINT
    # Metrics: GKE's managed Prometheus collectors only, not every namespace.
    metrics = policies["metrics"]
    assert selected(kube, metrics["podSelector"]) == set(SERVICES)
    (scrape,) = metrics["ingress"]
    (peer,) = scrape["from"]
    spaces = kube.items("ns", "-l", selector_string(peer["namespaceSelector"]))
    assert [n["metadata"]["name"] for n in spaces] == ["gmp-system"]
    assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "collector"}}


def test_pods_get_the_memory_disk_and_probes_asked_for(gke: Project, kube: Kube) -> None:
    """Issue 24, 14, 15, 18, on the pods as admitted."""
    for pod in wait_all_running(kube, EVERYTHING):
        name = component(pod)
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        for volume in volumes.values():
            if "emptyDir" in volume:
                assert "sizeLimit" in volume["emptyDir"], (name, volume["name"])
        spec = container(pod)
        resources = spec["resources"]
        assert {"ephemeral-storage"} <= set(resources["requests"]) & set(resources["limits"])
        assert "startupProbe" in spec, name
        if name in STATEFUL:
            assert resources["requests"]["memory"] == resources["limits"]["memory"], name
    # RabbitMQ's memory, as its conf.d states it, follows the limit of the pod that runs.
    (broker,) = kube.pods("app.kubernetes.io/name=rabbitmq")
    limit = int(broker["spec"]["containers"][0]["resources"]["limits"]["memory"].removesuffix("Gi"))
    (memory,) = [v for v in broker["spec"]["volumes"] if v["name"] == "memory"]
    conf = kube.get("configmap", memory["configMap"]["name"], "-n", NAMESPACE)["data"]
    total = limit * GIB - min(limit * GIB // 5, 2 * GIB)
    assert f"total_memory_available_override_value = {total}" in conf["40-memory.conf"]
    # One replica each: their budgets let a drain through (test_draining_the_database_node).
    for name in STATEFUL:

        def budget(name: str = name) -> dict[str, Any] | None:
            status: dict[str, Any] = kube.get("pdb", name, "-n", NAMESPACE).get("status", {})
            return status if status.get("expectedPods") == 1 else None

        status = wait_for(f"{name}'s budget to count its pod", budget)
        assert status["disruptionsAllowed"] == 1, status


def test_the_managed_prometheus_scrapes_the_services_and_the_broker(
    gke: Project, kube: Kube
) -> None:
    """The PodMonitorings, accepted under their CRD's schema, select what they mean."""
    wait_all_running(kube, EVERYTHING)
    monitors = {
        m["metadata"]["name"]: m["spec"] for m in kube.items("podmonitoring", "-n", NAMESPACE)
    }
    assert selected(kube, monitors["tunefleet-services"]["selector"]) == set(SERVICES)
    assert monitors["tunefleet-services"]["endpoints"][0]["port"] == "metrics"
    assert selected(kube, monitors["rabbitmq"]["selector"]) == {"rabbitmq"}
    (broker,) = kube.pods("app.kubernetes.io/name=rabbitmq")
    assert {"name": "prometheus", "containerPort": 15692, "protocol": "TCP"} in container(broker)[
        "ports"
    ]


def test_a_second_deploy_changes_nothing(gke: Project, kube: Kube) -> None:
    before = resource_versions(kube, gke)
    result = gke.make(*DEPLOY)
    changed = [line for line in result.stdout.splitlines() if line.endswith(" configured")]
    assert not changed, changed
    after = resource_versions(kube, gke)
    assert {k: v for k, v in after.items() if before.get(k) != v} == {}


def test_scaling_to_kedas_maximum_fills_the_spot_pool_and_no_more(gke: Project, kube: Kube) -> None:
    """Issue 24, 13: KEDA's maximum was 100 for 40 places; every worker it may ask for runs."""
    maximum = keda_maximum(gke)
    gke.make("scale", f"N={maximum}")
    pools = pool_of(kube)
    per_node: dict[str, int] = {}
    for pod in wait_workers(kube, running=maximum):
        node = pod["spec"]["nodeName"]
        assert pools[node] == "spot"
        per_node[node] = per_node.get(node, 0) + 1
    # 7 of a node's 15.89 CPUs each: two per node, so the maximum needs all 20 spot nodes.
    assert max(per_node.values()) == 2
    assert len(per_node) == 20 == maximum // 2
    gke.make(*DEPLOY)
    assert kube.get("deployment", "worker", "-n", NAMESPACE)["spec"]["replicas"] == maximum
    wait_workers(kube, running=maximum)
    gke.make("scale", "N=0")
    wait_workers(kube, running=0)
    gke.make(*DEPLOY)
    assert kube.get("deployment", "worker", "-n", NAMESPACE)["spec"]["replicas"] == 0
    assert wait_workers(kube, running=0) == []


def test_scaling_beyond_the_spot_pool_leaves_pods_pending_with_the_reason(
    gke: Project, kube: Kube
) -> None:
    maximum = keda_maximum(gke)
    gke.make("scale", f"N={maximum + 20}")
    wait_workers(kube, running=maximum, pending=20)

    def judged() -> list[dict[str, Any]] | None:
        """Once the scheduler has said why, on every pending pod."""
        pods = [p for p in kube.pods("app.kubernetes.io/name=worker") if not terminating(p)]
        pending = [p for p in pods if not running_on(p)]
        said = all(
            any(c["type"] == "PodScheduled" for c in p["status"].get("conditions", []))
            for p in pending
        )
        return pods if said else None

    pods = wait_for("the scheduler's reasons", judged)
    nodes = len(pool_of(kube))
    for pod in pods:
        if running_on(pod):
            continue
        (scheduled,) = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
        assert scheduled["status"] == "False"
        assert scheduled["reason"] == "Unschedulable"
        # Every spot node is full, and the regular pool neither tolerates nor matches workers.
        message = scheduled["message"]
        assert message.startswith(f"0/{nodes} nodes are available"), message
        assert "20 Insufficient cpu" in message, message
        assert "2 node(s) didn't match Pod's node affinity/selector" in message, message
    gke.make("scale", "N=4")
    wait_workers(kube, running=4)


def _worker_token(kube: Kube, pod: str, directory: Path) -> Path:
    """A token of the worker's service account bound to `pod`, as the kubelet mounts one."""
    token = kube.run(
        "create", "token", "worker", "-n", NAMESPACE,
        "--bound-object-kind=Pod", f"--bound-object-name={pod}", "--duration=10m",
    ).stdout.strip()  # fmt: skip
    path = directory / f"{pod}.token"
    path.write_text(token)
    return path


def _patch(plane: ControlPlane, token: Path, pod: str, patch: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{plane.server}/api/v1/namespaces/{NAMESPACE}/pods/{pod}",
        data=json.dumps(patch).encode(),
        method="PATCH",
        headers={
            "Authorization": f"Bearer {token.read_text()}",
            "Content-Type": "application/merge-patch+json",
        },
    )
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def _mark(
    kube: Kube, plane: ControlPlane, workers: list[str], busy: set[str], directory: Path
) -> dict[str, Path]:
    """Each worker sets its pod's deletion cost as tunefleet_worker.podcost does in a pod, with
    the token such a pod gets; returns the tokens."""
    tokens = {pod: _worker_token(kube, pod, directory) for pod in workers}
    for pod in workers:
        cost = DeletionCost(
            pod, NAMESPACE, plane.server, tokens[pod], plane.ca_file,
            busy=lambda pod=pod: pod in busy,
        )  # fmt: skip
        assert cost.update(), f"{pod} could not set its deletion cost"
    for pod in workers:
        annotations = kube.get("pod", pod, "-n", NAMESPACE)["metadata"]["annotations"]
        assert annotations[ANNOTATION] == str(BUSY if pod in busy else IDLE)
    return tokens


def test_scale_down_removes_idle_workers_first(
    gke: Project, kube: Kube, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """Issue 24, 13: a scale-down removed busy workers as readily as idle ones. Each worker
    now sets its own pod's deletion cost (tunefleet_worker.podcost, run here against this API
    server with the token a worker pod gets), may set nothing else, and the ReplicaSet keeps
    the busy ones: the older two, then the two newest (which it removes first otherwise)."""
    workers = sorted(p["metadata"]["name"] for p in wait_workers(kube, running=4))
    busy = set(workers[:2])
    tokens = _mark(kube, control_plane, workers, busy, tmp_path)

    # What a worker's token may not do: anything else, to any other pod.
    mine, other = workers[0], workers[2]
    denied = [
        (other, {"metadata": {"annotations": {ANNOTATION: "5000"}}}, "only the pod its token"),
        (mine, {"metadata": {"labels": {"app.kubernetes.io/name": "evil"}}}, "nothing of a pod"),
        (mine, {"metadata": {"annotations": {"x": "y"}}}, "no annotation but"),
    ]
    for target, patch, message in denied:
        status, body = _patch(control_plane, tokens[mine], target, patch)
        assert status == 403, (target, patch, body)
        assert message in body, body
    # Nor may any other service account (no RBAC for them).
    default = kube.run("create", "token", "default", "-n", NAMESPACE).stdout.strip()
    (tmp_path / "default.token").write_text(default)
    status, _ = _patch(control_plane, tmp_path / "default.token", mine, {"metadata": {}})
    assert status == 403

    gke.make("scale", "N=2")
    assert {p["metadata"]["name"] for p in wait_workers(kube, running=2)} == busy
    gke.make("scale", "N=4")
    pods = wait_workers(kube, running=4)
    newest = {p["metadata"]["name"] for p in pods} - busy
    _mark(kube, control_plane, sorted(p["metadata"]["name"] for p in pods), newest, tmp_path)
    gke.make("scale", "N=2")
    assert {p["metadata"]["name"] for p in wait_workers(kube, running=2)} == newest
    gke.make("scale", "N=4")
    wait_workers(kube, running=4)


def test_draining_a_spot_node_evicts_its_workers(gke: Project, kube: Kube) -> None:
    workers = wait_workers(kube, running=4)
    node = workers[0]["spec"]["nodeName"]
    evicted = {p["metadata"]["name"] for p in workers if p["spec"]["nodeName"] == node}
    # Preemption gives ~15 s: the workers' grace period must fit in it (docs/deploy.md).
    for pod in workers:
        assert pod["spec"]["terminationGracePeriodSeconds"] <= 15
    result = kube.run(
        "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s",
        check=False,
    )  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr
        for name in evicted:
            assert f"pod/{name} evicted" in result.stdout + result.stderr
        pools = pool_of(kube)
        after = wait_workers(kube, running=4)
        assert not evicted & {p["metadata"]["name"] for p in after}
        assert all(pools[p["spec"]["nodeName"]] == "spot" for p in after)
        assert node not in {p["spec"]["nodeName"] for p in after}
    finally:
        kube.run("uncordon", node)


def test_draining_the_database_node_moves_it_with_its_disk(gke: Project, kube: Kube) -> None:
    """Issue 24, 14: `minAvailable: 1` on one replica held every drain (a GKE node upgrade)
    until someone acted. The drain now goes through and MongoDB comes back on its claim."""
    pods = {component(p): p for p in wait_all_running(kube, EVERYTHING)}
    before = pods["mongodb"]
    node = before["spec"]["nodeName"]
    claim = kube.get("pvc", "data-mongodb-0", "-n", NAMESPACE)
    result = kube.run(
        "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s",
        check=False,
    )  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr
        assert "pod/mongodb-0 evicted" in result.stdout + result.stderr

        def moved() -> dict[str, Any] | None:
            (pod,) = kube.pods("app.kubernetes.io/name=mongodb") or [None]
            if (
                pod is None
                or terminating(pod)
                or pod["metadata"]["uid"] == before["metadata"]["uid"]
            ):
                return None
            return pod if running_on(pod) else None

        after = wait_for("MongoDB running again", moved, timeout_s=180)
        assert after["spec"]["nodeName"] != node
        again = kube.get("pvc", "data-mongodb-0", "-n", NAMESPACE)
        assert again["metadata"]["uid"] == claim["metadata"]["uid"]
        assert again["spec"]["volumeName"] == claim["spec"]["volumeName"]
    finally:
        kube.run("uncordon", node)


def test_keda_deploy_scales_the_worker_deployment_in_the_namespace(
    gke: Project, kube: Kube
) -> None:
    workers = kube.get("deployment", "worker", "-n", NAMESPACE)["spec"]["replicas"]
    gke.make(*DEPLOY, "KEDA=1")
    assert_every_object_in_the_namespace(kube, gke.rendered("gke-keda"))
    scaled = kube.get("scaledobject", "worker", "-n", NAMESPACE)
    target = scaled["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    kube.get("deployment", target["name"], "-n", NAMESPACE)
    (trigger,) = scaled["spec"]["triggers"]
    auth = kube.get("triggerauthentication", trigger["authenticationRef"]["name"], "-n", NAMESPACE)
    for ref in auth["spec"]["secretTargetRef"]:
        host = secret_values(kube, ref["name"])[ref["key"]]
        # KEDA's own user: queue lengths, nothing else (not the administrator's).
        assert urlsplit(host).username == "tunefleet-keda"
    policy = kube.get("netpol", "rabbitmq-management-from-keda", "-n", NAMESPACE)["spec"]
    assert selected(kube, policy["podSelector"]) == {"rabbitmq"}
    (rule,) = policy["ingress"]
    namespaces = kube.items("ns", "-l", selector_string(rule["from"][0]["namespaceSelector"]))
    assert [n["metadata"]["name"] for n in namespaces] == ["keda"]
    assert rule["from"][0]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "keda-operator"}
    }
    assert [p["port"] for p in rule["ports"]] == [15672]
    # The count is KEDA's now: deploying the ScaledObject did not set it.
    assert kube.get("deployment", "worker", "-n", NAMESPACE)["spec"]["replicas"] == workers


def test_teardown_keeps_the_data_and_a_redeploy_reattaches_it(gke: Project, kube: Kube) -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    teardown = docs[docs.index("### Teardown") :].split("```bash\n", 1)[1]
    assert teardown.startswith("make teardown "), "docs/deploy.md documents another teardown"
    wait_all_running(kube, EVERYTHING)
    claims = {c["metadata"]["name"]: c for c in kube.items("pvc", "-n", NAMESPACE)}
    assert set(claims) == {f"data-{name}-0" for name in STATEFUL}
    volumes = {c["spec"]["volumeName"] for c in claims.values()}
    gke.make("teardown", "KEDA=1")
    wait_for("every pod to be gone", lambda: not kube.pods())
    for kind in ("statefulset", "deployment", "service", "scaledobject", "secret", "netpol"):
        assert kube.items(kind, "-n", NAMESPACE) == [], kind
    assert kube.get("namespace", NAMESPACE)["status"]["phase"] == "Active"
    kept = {c["metadata"]["name"]: c for c in kube.items("pvc", "-n", NAMESPACE)}
    assert {n: c["metadata"]["uid"] for n, c in kept.items()} == {
        n: c["metadata"]["uid"] for n, c in claims.items()
    }
    bound = {pv["metadata"]["name"] for pv in kube.items("pv") if pv["status"]["phase"] == "Bound"}
    assert volumes <= bound

    gke.make(*DEPLOY, "KEDA=1")
    pods = {component(p): p for p in wait_all_running(kube, EVERYTHING)}
    for name in STATEFUL:
        (claim,) = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pods[name]["spec"]["volumes"]
            if v["name"] == "data"
        ]
        again = kube.get("pvc", claim, "-n", NAMESPACE)
        assert again["metadata"]["uid"] == claims[claim]["metadata"]["uid"]
        assert again["spec"]["volumeName"] == claims[claim]["spec"]["volumeName"]


def test_the_release_holds_only_what_make_wrote(gke: Project) -> None:
    release = gke.root / "k8s" / "release"
    assert sorted(p.name for p in release.iterdir()) == [
        ".gitignore",
        "kustomization.yaml",
        "policies.yaml",
    ]
    written = yaml.safe_load((release / "kustomization.yaml").read_text())
    assert {i["name"]: i["digest"] for i in written["images"]} == {
        f"tunefleet-{s}": digest_of(f"{REGISTRY}/tunefleet-{s}:{TAG}") for s in IMAGES
    }
