"""mk/deploy.mk and mk/containers.mk: documented targets, clear errors, and the release overlay
deploy-gke applies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import (
    MONGODB_CIDR,
    REGISTRY,
    ROOT,
    fake_tools,
    image_digest,
    kubectl,
    workloads,
)

TARGETS = {"dev", "up", "down", "compose-demo", "compose-test", "deploy-gke", "scale", "status"}


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_deploy_target_is_in_make_help() -> None:
    text = (ROOT / "mk" / "deploy.mk").read_text() + (ROOT / "mk" / "containers.mk").read_text()
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


@pytest.mark.parametrize("overlay", ["gke", "gke-keda", "gke-production"])
def test_gke_release_pins_the_pushed_images_by_digest(
    k8s_tree: Path, tmp_path: Path, overlay: str
) -> None:
    """`make gke-release` (run by deploy-gke after the push) writes k8s/release; the overlay
    then deploys the images exactly as pushed."""
    tree = tmp_path / "k8s"
    shutil.copytree(k8s_tree, tree)
    docker, kube = fake_tools(tmp_path / "tools")
    result = _make(
        "gke-release",
        "PROJECT=p",
        f"REGISTRY={REGISTRY}",
        "TAG=abc123",
        f"OVERLAY={overlay}",
        f"MONGODB_CIDR={MONGODB_CIDR}",
        f"DOCKER={docker}",
        f"KUBECTL={kube}",
        f"RELEASE_DIR={tree / 'release'}",
    )
    assert result.returncode == 0, result.stderr
    built = subprocess.run(
        [kubectl(), "kustomize", str(tree / overlay)], capture_output=True, text=True, check=True
    )
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(built.stdout) if d]
    images = {
        c["image"] for d in workloads(docs) for c in d["spec"]["template"]["spec"]["containers"]
    }
    for service in ("publisher", "worker", "collector"):
        assert f"{REGISTRY}/tunefleet-{service}@{image_digest(service, 'abc123')}" in images
    assert any(d["kind"] == "ScaledObject" for d in docs) == (overlay == "gke-keda")


def test_gke_release_refuses_an_image_that_was_not_pushed(k8s_tree: Path, tmp_path: Path) -> None:
    no_digest = tmp_path / "docker"
    no_digest.write_text(f"#!{sys.executable}\nprint('[]')\n")
    no_digest.chmod(0o755)
    result = _make(
        "gke-release", "PROJECT=p", f"REGISTRY={REGISTRY}", "TAG=abc123",
        f"DOCKER={no_digest}", f"RELEASE_DIR={tmp_path / 'release'}",
    )  # fmt: skip
    assert result.returncode != 0
    assert "push it first" in result.stderr
    assert not (tmp_path / "release").exists()


def test_gke_production_needs_the_databases_address(tmp_path: Path) -> None:
    docker, kube = fake_tools(tmp_path / "tools")
    result = _make(
        "gke-release", "PROJECT=p", f"REGISTRY={REGISTRY}", "TAG=abc123",
        "OVERLAY=gke-production", f"DOCKER={docker}", f"KUBECTL={kube}",
        f"RELEASE_DIR={tmp_path / 'release'}",
    )  # fmt: skip
    assert result.returncode != 0
    assert "MONGODB_CIDR" in result.stderr


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def test_a_tree_with_changes_never_reuses_the_commits_tag(tmp_path: Path) -> None:
    """The default TAG: the commit when the tree is clean; with changes (tracked or not) the
    commit and a hash of them, the same for the same changes and different for others."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "mk", repo / "mk")
    shutil.copy(ROOT / "Makefile", repo / "Makefile")
    (repo / "app.py").write_text("print(1)\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    commit = _git(repo, "rev-parse", "--short=12", "HEAD")

    def tag() -> str:
        result = subprocess.run(
            ["make", "--no-print-directory", "-s", "release-tag"],
            cwd=repo, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return result.stdout.strip()

    assert tag() == commit
    (repo / "app.py").write_text("print(2)\n")
    dirty = tag()
    assert dirty.startswith(f"{commit}-dirty-") and dirty != commit
    assert tag() == dirty, "the same changes, the same tag"
    (repo / "app.py").write_text("print(3)\n")
    assert tag() not in {commit, dirty}
    (repo / "app.py").write_text("print(1)\n")
    assert tag() == commit
    (repo / "new.py").write_text("x = 1\n")
    assert tag().startswith(f"{commit}-dirty-"), "an untracked file is a change"
