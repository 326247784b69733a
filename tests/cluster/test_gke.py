"""`make deploy-gke`, `make scale`, `make teardown` and node drains, run for real against a live
API server on GKE-like nodes: a regular pool and a tainted spot pool, sized as GKE sizes them.

The tests run in file order on one deployment, as an operator would: deploy, redeploy, scale,
drain, KEDA, teardown and redeploy.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.cluster.controlplane import tool_dir

from .kube import (
    GKE_STORAGE,
    NAMESPACE,
    POOL,
    ROOT,
    Kube,
    NodePool,
    Project,
    running_on,
    wait_for,
)

POOLS = (
    NodePool("default-pool", "e2-standard-8", cpus=8, memory_gib=32, count=2),
    # docs/deploy.md's spot pool at its --max-nodes: two 7-CPU workers fit on each node.
    NodePool("spot", "n2d-standard-16", cpus=16, memory_gib=64, count=20, spot=True),
)
REGISTRY = "europe-west4-docker.pkg.dev/demo-project/tunefleet"
TAG = "0123456789ab"
DEPLOY = ("deploy-gke", "PROJECT=demo-project", f"REGISTRY={REGISTRY}", f"TAG={TAG}")
SERVICES = ("publisher", "worker", "collector")
STATEFUL = ("rabbitmq", "mongodb")


@pytest.fixture(scope="module")
def gke(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    nodes = [node for pool in POOLS for node in pool.nodes()]
    kube.apply([*GKE_STORAGE, *nodes])
    # KEDA itself is not installed (nothing here would run it); its API and namespace are.
    kube.run("apply", "--server-side", "-f", str(tool_dir("keda")))
    kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "keda"}}])
    names = {node["metadata"]["name"] for node in nodes}
    wait_for("the GKE nodes to be Ready", lambda: names <= ready_nodes(kube))
    yield Project(tmp_path_factory.mktemp("gke"), kube)
    kube.delete_namespace()
    kube.delete_namespace("keda")
    kube.run("delete", "node", *sorted(names), "--wait=false")
    kube.run("delete", "storageclass", *(c["metadata"]["name"] for c in GKE_STORAGE))


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


def terminating(pod: dict[str, Any]) -> bool:
    return "deletionTimestamp" in pod["metadata"]


def wait_all_running(kube: Kube) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        pods = [p for p in kube.pods() if not terminating(p)]
        names = {component(p) for p in pods}
        if names >= {*STATEFUL, "publisher", "collector"} and all(map(running_on, pods)):
            return pods
        return None

    return wait_for("every pod Running and Ready", probe, timeout_s=240)


def resource_versions(kube: Kube, project: Project) -> dict[str, str]:
    """kind/name -> resourceVersion of every object the release applies."""
    docs = [d for d in project.rendered() if d["kind"] != "Namespace"]
    refs = [f"{d['kind']}/{d['metadata']['name']}" for d in docs]
    live = kube.items("-n", NAMESPACE, *refs)
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in live}


def assert_every_object_in_the_namespace(kube: Kube, project: Project) -> None:
    for doc in project.rendered():
        if doc["kind"] == "Namespace":
            continue
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{name} renders without it"
        live = kube.run("get", name, "-n", NAMESPACE, check=False)
        assert live.returncode == 0, f"{name} is not in {NAMESPACE}: {live.stderr}"
        stray = kube.run("get", name, "-n", "default", check=False)
        assert stray.returncode != 0, f"{name} is in default"


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


def selected(kube: Kube, selector: dict[str, Any]) -> set[str]:
    """The components (app.kubernetes.io/name) of the pods a pod selector selects."""
    return {component(p) for p in kube.pods(selector_string(selector)) if not terminating(p)}


# -- the tests, in the order an operator goes --------------------------------------------------


def test_env_file_is_git_ignored() -> None:
    """docs/deploy.md has real passwords put in .env; `git add .` must not take them."""
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", ".env"], cwd=ROOT, check=False
    )
    assert result.returncode == 0, ".env is not in .gitignore"


def test_deploy_gke_builds_pushes_applies_and_rolls_out(gke: Project, kube: Kube) -> None:
    result = gke.make(*DEPLOY)
    assert "PodSecurity" not in result.stderr, result.stderr
    calls = gke.recorded()
    assert calls[0][:4] == ["gcloud", "container", "clusters", "get-credentials"]
    images = [f"{REGISTRY}/tunefleet-{s}:{TAG}" for s in SERVICES]
    builds = [c for c in calls if c[:2] == ["docker", "build"]]
    assert [c[c.index("-t") + 1] for c in builds] == images
    for build, service in zip(builds, SERVICES, strict=True):
        assert build[build.index("--platform") + 1] == "linux/amd64"
        assert build[build.index("--target") + 1] == service
    pushes = [c for c in calls if c[:2] == ["docker", "push"]]
    assert [c[2] for c in pushes] == images
    assert calls.index(pushes[0]) > calls.index(builds[-1]), "pushed before every image was built"
    for service in SERVICES:
        deployment = kube.get("deployment", service, "-n", NAMESPACE)
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"{REGISTRY}/tunefleet-{service}:{TAG}"
    assert_every_object_in_the_namespace(kube, gke)


def test_pods_run_on_their_pools(gke: Project, kube: Kube) -> None:
    pools = pool_of(kube)
    for pod in wait_all_running(kube):
        pool = pools[pod["spec"]["nodeName"]]
        expected = "spot" if component(pod) == "worker" else "default-pool"
        assert pool == expected, f"{pod['metadata']['name']} on {pool}"


def test_services_have_the_pods_as_endpoints(gke: Project, kube: Kube) -> None:
    wait_all_running(kube)
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


def test_network_policies_select_the_pods_they_mean(gke: Project, kube: Kube) -> None:
    everything = {component(p) for p in wait_all_running(kube)}
    assert everything == {*STATEFUL, *SERVICES}
    policies = {p["metadata"]["name"]: p["spec"] for p in kube.items("netpol", "-n", NAMESPACE)}
    assert selected(kube, policies["default-deny-ingress"]["podSelector"]) == everything
    assert "ingress" not in policies["default-deny-ingress"]
    broker = policies["rabbitmq"]
    assert selected(kube, broker["podSelector"]) == {"rabbitmq"}
    (rule,) = broker["ingress"]
    assert selected(kube, rule["from"][0]["podSelector"]) == set(SERVICES)
    assert [p["port"] for p in rule["ports"]] == [5672]
    store = policies["mongodb"]
    assert selected(kube, store["podSelector"]) == {"mongodb"}
    (rule,) = store["ingress"]
    assert selected(kube, rule["from"][0]["podSelector"]) == {"collector"}
    # The planner reads what a resume keeps; workers read uploaded datasets and store models.
    peers = [selected(kube, peer["podSelector"]) for peer in rule["from"]]
    assert peers == [{"collector"}, {"publisher"}, {"worker"}]
    assert selected(kube, policies["metrics"]["podSelector"]) == set(SERVICES)


def test_a_second_deploy_changes_nothing(gke: Project, kube: Kube) -> None:
    before = resource_versions(kube, gke)
    result = gke.make(*DEPLOY)
    changed = [line for line in result.stdout.splitlines() if line.endswith(" configured")]
    assert not changed, changed
    after = resource_versions(kube, gke)
    assert {k: v for k, v in after.items() if before.get(k) != v} == {}


def test_scale_survives_a_redeploy(gke: Project, kube: Kube) -> None:
    gke.make("scale", "N=40")
    pools = pool_of(kube)
    per_node: dict[str, int] = {}
    for pod in wait_workers(kube, running=40):
        node = pod["spec"]["nodeName"]
        assert pools[node] == "spot"
        per_node[node] = per_node.get(node, 0) + 1
    # 7 of a node's 15.89 CPUs each: two per node, so 40 workers need all 20 spot nodes.
    assert max(per_node.values()) == 2
    assert len(per_node) == 20
    gke.make(*DEPLOY)
    assert kube.get("deployment", "worker", "-n", NAMESPACE)["spec"]["replicas"] == 40
    wait_workers(kube, running=40)
    gke.make("scale", "N=0")
    wait_workers(kube, running=0)
    gke.make(*DEPLOY)
    assert kube.get("deployment", "worker", "-n", NAMESPACE)["spec"]["replicas"] == 0
    assert wait_workers(kube, running=0) == []


def test_scaling_beyond_the_spot_pool_leaves_pods_pending_with_the_reason(
    gke: Project, kube: Kube
) -> None:
    gke.make("scale", "N=60")
    pods = wait_workers(kube, running=40, pending=20)
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


def test_draining_the_database_node_is_held_by_the_disruption_budgets(
    gke: Project, kube: Kube
) -> None:
    pods = {component(p): p for p in wait_all_running(kube)}
    for name in STATEFUL:
        pdb = kube.get("pdb", name, "-n", NAMESPACE)
        assert pdb["status"]["disruptionsAllowed"] == 0, pdb["status"]
    node = pods["mongodb"]["spec"]["nodeName"]
    result = kube.run(
        "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=20s",
        check=False,
    )  # fmt: skip
    try:
        assert result.returncode != 0
        assert "violate the pod's disruption budget" in result.stderr, result.stderr
        still = kube.get("pod", pods["mongodb"]["metadata"]["name"], "-n", NAMESPACE)
        assert running_on(still) == node
        assert not terminating(still)
    finally:
        kube.run("uncordon", node)


def test_keda_deploy_scales_the_worker_deployment_in_the_namespace(
    gke: Project, kube: Kube
) -> None:
    workers = kube.get("deployment", "worker", "-n", NAMESPACE)["spec"]["replicas"]
    gke.make(*DEPLOY, "KEDA=1")
    assert_every_object_in_the_namespace(kube, gke)
    scaled = kube.get("scaledobject", "worker", "-n", NAMESPACE)
    target = scaled["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    kube.get("deployment", target["name"], "-n", NAMESPACE)
    (trigger,) = scaled["spec"]["triggers"]
    auth = kube.get("triggerauthentication", trigger["authenticationRef"]["name"], "-n", NAMESPACE)
    for ref in auth["spec"]["secretTargetRef"]:
        secret = kube.get("secret", ref["name"], "-n", NAMESPACE)
        assert ref["key"] in secret["data"]
    policy = kube.get("netpol", "rabbitmq-management-from-keda", "-n", NAMESPACE)["spec"]
    assert selected(kube, policy["podSelector"]) == {"rabbitmq"}
    (rule,) = policy["ingress"]
    namespaces = kube.items("ns", "-l", selector_string(rule["from"][0]["namespaceSelector"]))
    assert [n["metadata"]["name"] for n in namespaces] == ["keda"]
    assert [p["port"] for p in rule["ports"]] == [15672]
    # The count is KEDA's now: deploying the ScaledObject did not set it.
    assert kube.get("deployment", "worker", "-n", NAMESPACE)["spec"]["replicas"] == workers


def test_teardown_keeps_the_data_and_a_redeploy_reattaches_it(gke: Project, kube: Kube) -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    teardown = docs[docs.index("### Teardown") :].split("```bash\n", 1)[1]
    assert teardown.startswith("make teardown "), "docs/deploy.md documents another teardown"
    wait_all_running(kube)
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
    pods = {component(p): p for p in wait_all_running(kube)}
    for name in STATEFUL:
        (claim,) = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pods[name]["spec"]["volumes"]
            if v["name"] == "data"
        ]
        again = kube.get("pvc", claim, "-n", NAMESPACE)
        assert again["metadata"]["uid"] == claims[claim]["metadata"]["uid"]
        assert again["spec"]["volumeName"] == claims[claim]["spec"]["volumeName"]
