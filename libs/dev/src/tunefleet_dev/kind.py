"""Local Kubernetes on kind, for `make dev` (Tilt) and tests/kind.

    python -m tunefleet_dev.kind install          what the others need, built once (make test
                                                  runs it before the suites)
    python -m tunefleet_dev.kind up [NAME]        a running cluster NAME (tunefleet), created if
                                                  missing, the stand-in images loaded, Tilt's
                                                  configuration written (make dev)
    python -m tunefleet_dev.kind down [NAME]      delete it (make dev-down)
    python -m tunefleet_dev.kind tilt -- ARGS     Tilt with kind on its PATH (make dev)

What it needs is installed when missing, saying what and why once: Docker (tunefleet_dev.engine),
kind (built from its Go module), Tilt (built from its module, as deploy/cluster does), and where
Docker Hub cannot be reached, kind's node image (tunefleet_dev.kindimage) and the stand-ins of
the images the Tiltfile and k8s/dev name (tunefleet_dev.images, and Tilt's restart helper).
kind's defaults (`kindest/node`, the official images) stay wherever they can be pulled.

The stand-ins are chosen by configuration, not by the Tiltfile or the manifests:
.tunefleet/dev/tilt.json (git-ignored; TUNEFLEET_DEV_CONFIG elsewhere), which the Tiltfile
reads when present: build arguments and secrets for the Dockerfile, the restart helper, and
which image of the manifests each stand-in replaces.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunefleet_dev import engine, images
from tunefleet_dev.images import ROOT, Docker, build_ca
from tunefleet_dev.installs import CACHE, ToolError, build_script, cli
from tunefleet_dev.kindimage import KIND, ensure_node_image

__all__ = [
    "DEFAULT_NODE_IMAGE",
    "Cluster",
    "KindError",
    "Node",
    "dev_config",
    "kind_binary",
    "tilt_binary",
    "up",
]

DEFAULT_CLUSTER = "tunefleet"
# kind v0.33.0's default (sigs.k8s.io/kind/pkg/apis/config/defaults): used where it can be pulled.
DEFAULT_NODE_IMAGE = (
    "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"
)
TILT_VERSION = "v0.33.21"
RESTART_HELPER = "tiltdev/restart-helper:2024-06-06"
RESTART_HELPER_STANDIN = "tunefleet-local/restart-helper:2024-06-06"
DEV_CONFIG = ROOT / ".tunefleet" / "dev" / "tilt.json"
_LABEL = "io.tunefleet.recipe"


class KindError(ToolError):
    """A cluster that cannot be created or reached; the text says what to do."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def kind_binary() -> str:
    """kind on PATH, else v0.33.0 built from its module (cached), as a file named `kind` (Tilt
    runs `kind load docker-image` by that name)."""
    found = shutil.which("kind")
    if found:
        return found
    built = KIND.ensure()
    named = built.parent / f"{built.name}.d" / "kind"
    if not named.exists():
        named.parent.mkdir(parents=True, exist_ok=True)
        named.symlink_to(built)
    return str(named)


def tilt_binary() -> str:
    """tilt on PATH, else the one deploy/cluster builds (cached under ~/.cache/tunefleet/kube)."""
    found = shutil.which("tilt")
    if found:
        return found
    target = CACHE / "kube" / f"tilt-{TILT_VERSION}"
    if not (target / "web-placeholder.html").exists():
        _say(
            f"building Tilt {TILT_VERSION} from its Go module into {target} (once): "
            "make dev runs it"
        )
        build_script("tilt", TILT_VERSION, target, f"Tilt {TILT_VERSION}")
    return str(target / "tilt")


@dataclass(frozen=True)
class Node:
    """One kind node: its role, labels and taints (a GKE node pool's, for instance)."""

    role: str = "control-plane"
    labels: Mapping[str, str] = field(default_factory=dict)
    # key=value:Effect; None: kubeadm's own (a control plane beside workers is tainted
    # NoSchedule, kind removes it only where the control plane is the one node).
    taints: Sequence[str] | None = None

    def config(self, image: str | None) -> dict[str, Any]:
        node: dict[str, Any] = {"role": self.role}
        if image:
            node["image"] = image
        if self.labels:
            node["labels"] = dict(self.labels)
        if self.taints is not None:
            kind = "InitConfiguration" if self.role == "control-plane" else "JoinConfiguration"
            taints = []
            for taint in self.taints:
                pair, _, effect = taint.rpartition(":")
                key, _, value = pair.partition("=")
                taints.append({"key": key, "value": value, "effect": effect})
            patch = {"kind": kind, "nodeRegistration": {"taints": taints}}
            node["kubeadmConfigPatches"] = [json.dumps(patch)]
        return node


@dataclass(frozen=True)
class Cluster:
    """A kind cluster: its name, nodes, and the kubeconfig kind writes its context into."""

    name: str = DEFAULT_CLUSTER
    nodes: Sequence[Node] = (Node(),)
    kubeconfig: Path | None = None

    @property
    def context(self) -> str:
        return f"kind-{self.name}"

    def config(self, image: str | None, absent: frozenset[str] = frozenset()) -> str:
        """kind's cluster configuration (JSON, which kind reads as the YAML it is), for a host
        whose capability bounding set lacks `absent`."""
        config: dict[str, Any] = {
            "kind": "Cluster",
            "apiVersion": "kind.x-k8s.io/v1alpha4",
            "name": self.name,
            "nodes": [node.config(image) for node in self.nodes],
        }
        if "CAP_SYS_RESOURCE" in absent:
            # Without it no process in the node may lower an oom_score_adj: runc then fails to
            # start every pod sandbox (kubelet asks -998 for them), with "can't get final
            # child's PID from pipe: EOF". containerd's restrict_oom_score_adj (made for
            # rootless nodes) keeps each container's at or above containerd's own instead.
            config["containerdConfigPatches"] = [
                '[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = true\n'
            ]
        return json.dumps(config, indent=2)

    def kind(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return subprocess.run(
            [kind_binary(), *args], capture_output=True, text=True, env=env, timeout=timeout,
            check=False,
        )  # fmt: skip

    def exists(self) -> bool:
        listed = self.kind("get", "clusters")
        return self.name in listed.stdout.split()

    def kubectl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise KindError("no kubectl on PATH: run inside the project's venv (uv run)")
        command = [kubectl, "--context", self.context]
        if self.kubeconfig is not None:
            command += ["--kubeconfig", str(self.kubeconfig)]
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=timeout, check=False
        )


def node_image(docker: Docker) -> str | None:
    """None where kind's own node image is here or can be pulled; else the one built here."""
    if docker.label(DEFAULT_NODE_IMAGE) is not None or docker.pull(DEFAULT_NODE_IMAGE) is None:
        return None
    return ensure_node_image(docker)


def create(cluster: Cluster, docker: Docker | None = None, timeout_s: float = 600) -> None:
    """Create the cluster unless it exists, and wait until its nodes and DNS are ready."""
    docker = docker or Docker()
    engine.start_daemon()
    engine.ensure_privileged_containers()
    if not cluster.exists():
        image = node_image(docker)
        config = ROOT / ".tunefleet" / "kind" / f"{cluster.name}.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(cluster.config(image, engine.absent_capabilities()))
        _say(f"creating the kind cluster {cluster.name} ({len(cluster.nodes)} node(s), "
             f"{image or DEFAULT_NODE_IMAGE.partition('@')[0]})")  # fmt: skip
        args = ["create", "cluster", "--name", cluster.name, "--config", str(config)]
        if cluster.kubeconfig is not None:
            args += ["--kubeconfig", str(cluster.kubeconfig)]
        created = cluster.kind(*args, timeout=timeout_s)
        if created.returncode != 0:
            tail = (created.stderr or created.stdout).strip()[-2500:]
            raise KindError(
                f"kind could not start the cluster {cluster.name}: {tail}\n"
                f"its nodes' logs: `kind export logs --name {cluster.name}`; "
                f"remove what is left: `kind delete cluster --name {cluster.name}`"
            )
    wait_ready(cluster, timeout_s)


def wait_ready(cluster: Cluster, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    for what, args in (
        ("its nodes Ready", ["wait", "--for=condition=Ready", "nodes", "--all", "--timeout=10s"]),
        ("CoreDNS available", ["-n", "kube-system", "wait", "--for=condition=Available",
                               "deployment/coredns", "--timeout=10s"]),
    ):  # fmt: skip
        while True:
            result = cluster.kubectl(*args)
            if result.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise KindError(
                    f"the kind cluster {cluster.name} did not get {what} in {timeout_s:.0f} s: "
                    f"{result.stderr.strip()[-1000:]} (`kubectl --context {cluster.context} get "
                    "pods -A` shows what is missing)"
                )
            time.sleep(2)


def delete(cluster: Cluster) -> None:
    """The cluster gone, and the images Tilt built for it (`tunefleet-*:tilt-<hash>`, a new
    set of gigabytes at every `tilt up`/`tilt ci` run): nothing uses them once it is."""
    if cluster.exists():
        result = cluster.kind("delete", "cluster", "--name", cluster.name)
        if result.returncode != 0:
            raise KindError(f"kind delete cluster {cluster.name}: {result.stderr.strip()}")
    if engine.daemon_answers():
        Docker().remove_tagged("tunefleet-", "tilt-")


def load(cluster: Cluster, names: Iterable[str]) -> None:
    """Put local images into every node (what the manifests name but Tilt does not build)."""
    todo = list(names)
    if not todo:
        return
    result = cluster.kind("load", "docker-image", "--name", cluster.name, *todo, timeout=900)
    if result.returncode != 0:
        raise KindError(f"kind load docker-image {' '.join(todo)}: {result.stderr.strip()}")


def manifest_images() -> dict[str, str]:
    """The third-party images k8s/components name ({variable: reference}), pinned by digest."""
    found: dict[str, str] = {}
    for variable, path in (
        ("RABBITMQ_IMAGE", "k8s/components/rabbitmq/rabbitmq.yaml"),
        ("MONGO_IMAGE", "k8s/components/mongodb/mongodb.yaml"),
    ):
        match = re.search(r"^\s*image:\s*(\S+)\s*$", (ROOT / path).read_text(), re.M)
        if match is None:
            raise KindError(f"no image in {path}")
        found[variable] = match.group(1)
    return found


def ensure_restart_helper(docker: Docker) -> str:
    """Tilt's restart helper where it can be pulled, else its stand-in (built once)."""
    if docker.label(RESTART_HELPER) is not None or docker.pull(RESTART_HELPER) is None:
        return RESTART_HELPER
    folder = ROOT / "deploy" / "images"
    recipe = folder / "restart-helper.Dockerfile"
    key = images._recipe_key(*(path.read_bytes() for path in (
        recipe, folder / "tilt-restart-wrapper", folder / "entr"
    )))  # fmt: skip
    if docker.label(RESTART_HELPER_STANDIN) != key:
        _say(f"building the stand-in {RESTART_HELPER_STANDIN} (restart-helper.Dockerfile, once)")
        with tempfile.TemporaryDirectory(prefix="tunefleet-restart-helper-") as tmp:
            for name in ("tilt-restart-wrapper", "entr"):
                shutil.copy2(folder / name, Path(tmp) / name)
            docker.build(RESTART_HELPER_STANDIN, recipe, Path(tmp), {}, key)
    return RESTART_HELPER_STANDIN


def dev_config(docker: Docker, ports: Mapping[int, int] | None = None) -> dict[str, Any]:
    """What the Tiltfile reads from .tunefleet/dev/tilt.json: the images to build from and
    deploy where the official ones cannot be pulled, and (for tests) other local ports."""
    resolution = images.resolve(docker=docker)
    config: dict[str, Any] = {
        "build_args": {
            variable: resolution.images[variable] for variable in ("PYTHON_IMAGE", "UV_IMAGE")
        },
        "restart_helper": ensure_restart_helper(docker),
        "images": {},
    }
    ca = build_ca()
    if ca is not None:
        config["secrets"] = [f"id=ca,src={ca}"]
    for variable, reference in manifest_images().items():
        chosen = resolution.images[variable]
        if chosen != images.official_defaults()[variable]:
            config["images"][reference] = chosen
    if ports:
        config["ports"] = {str(remote): local for remote, local in ports.items()}
    return config


def up(
    cluster: Cluster, config_path: Path = DEV_CONFIG, ports: Mapping[int, int] | None = None
) -> dict[str, Any]:
    """The cluster running, the stand-ins in it and Tilt's configuration written."""
    docker = Docker()
    engine.ensure_installed()
    create(cluster, docker)
    config = dev_config(docker, ports)
    load(cluster, config["images"].values())
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return config


def tilt_env(cluster: Cluster, config_path: Path | None = None) -> dict[str, str]:
    """The environment Tilt runs in: kind on PATH (Tilt runs `kind load`), the cluster name
    and the configuration file for the Tiltfile (TUNEFLEET_DEV_CONFIG if set)."""
    path = os.pathsep.join([str(Path(kind_binary()).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "KIND_CLUSTER": cluster.name}
    if config_path is not None:
        env["TUNEFLEET_DEV_CONFIG"] = str(config_path)
    env.setdefault("TUNEFLEET_DEV_CONFIG", str(DEV_CONFIG))
    if cluster.kubeconfig is not None:
        env["KUBECONFIG"] = str(cluster.kubeconfig)
    return env


def install(docker: Docker | None = None) -> None:
    """kind, Tilt, and where they cannot be pulled, the node image and the stand-ins."""
    docker = docker or Docker()
    engine.ensure_installed()
    engine.start_daemon()
    engine.ensure_privileged_containers()
    kind_binary()
    tilt_binary()
    node_image(docker)
    dev_config(docker)


def tilt_command(args: Sequence[str]) -> tuple[str, list[str]]:
    """Tilt and its arguments; the one built here (no browser UI, deploy/cluster/build.sh)
    serves its placeholder page, which `up` and `ci` must be told to (--web-mode=prod)."""
    tilt = tilt_binary()
    argv = [tilt, *args]
    built_here = (Path(tilt).parent / "web-placeholder.html").exists()
    if built_here and argv[1:2] in (["up"], ["ci"]) and not any("--web-mode" in a for a in args):
        argv.insert(2, "--web-mode=prod")
    return tilt, argv


def _dispatch(args: list[str]) -> int | None:
    if args == ["install"]:
        install()
    elif args[:1] == ["up"] and len(args) <= 2:
        cluster = Cluster(args[1] if len(args) > 1 else DEFAULT_CLUSTER)
        up(cluster)
        _say(f"kind cluster {cluster.name} ready (context {cluster.context})")
    elif args[:1] == ["down"] and len(args) <= 2:
        delete(Cluster(args[1] if len(args) > 1 else DEFAULT_CLUSTER))
    elif args[:2] == ["tilt", "--"]:
        cluster = Cluster(os.environ.get("KIND_CLUSTER", DEFAULT_CLUSTER))
        os.execve(*tilt_command(args[2:]), tilt_env(cluster))
    else:
        return None
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli(_dispatch, __doc__ or "", argv)


if __name__ == "__main__":
    raise SystemExit(main())
