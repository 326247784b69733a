"""One live control plane per session (deploy/cluster/controlplane.py); in CI its absence fails
the run. Each module brings its own nodes and leaves the cluster without them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from deploy.cluster.controlplane import ControlPlane, ControlPlaneError

from .kube import Kube

IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        plane = ControlPlane(tmp_path_factory.mktemp("control-plane"))
        plane.start()
    except ControlPlaneError as exc:
        plane.stop()
        if IN_CI:
            pytest.fail(f"no control plane in CI (make cluster-install builds it): {exc}")
        pytest.skip(f"no control plane (make cluster-install builds it): {exc}")
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Kube:
    return Kube(control_plane.kubeconfig)
