"""mk/deploy.mk: documented targets, clear errors, and the release overlay deploy-gke applies."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT, kubectl, workloads

TARGETS = {"dev", "up", "down", "deploy-gke", "scale", "status"}


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_deploy_target_is_in_make_help() -> None:
    text = (ROOT / "mk" / "deploy.mk").read_text()
    defined = set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))
    assert defined >= TARGETS
    helped = set(re.findall(r"^\s+(?:\x1b\[36m)?([a-z][a-z0-9-]*)", _make("help").stdout, re.M))
    assert defined <= helped, defined - helped


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["deploy-gke", "PROJECT="], "PROJECT="),
        (["deploy-gke", "PROJECT=p", "REGISTRY="], "REGISTRY="),
        (["scale", "N="], "N="),
    ],
)
def test_missing_variables_fail_with_their_name(args: list[str], named: str) -> None:
    result = _make(*args)
    assert result.returncode != 0
    assert named in result.stderr


@pytest.mark.parametrize("keda", ["", "1"])
def test_the_release_overlay_points_the_images_at_the_registry(k8s_tree: Path, keda: str) -> None:
    release = k8s_tree / f"release{keda}"
    result = _make(
        "gke-release",
        "PROJECT=p",
        "REGISTRY=europe-west4-docker.pkg.dev/p/tunefleet",
        "TAG=abc123",
        f"KEDA={keda}",
        f"RELEASE_DIR={release}",
    )
    assert result.returncode == 0, result.stderr
    built = subprocess.run(
        [kubectl(), "kustomize", str(release)], capture_output=True, text=True, check=True
    )
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(built.stdout) if d]
    images = {
        c["image"] for d in workloads(docs) for c in d["spec"]["template"]["spec"]["containers"]
    }
    for service in ("publisher", "worker", "collector"):
        assert f"europe-west4-docker.pkg.dev/p/tunefleet/tunefleet-{service}:abc123" in images
    assert any(d["kind"] == "ScaledObject" for d in docs) == bool(keda)
