"""kind's node image, built here where `kindest/node` and the images it holds cannot be pulled.

A kind node is a container that boots systemd, containerd and a kubelet, with the images of the
control plane already in containerd. kind's own node image is `kindest/node` on Docker Hub; it is
made by `kind build node-image` from `kindest/base` (the kind module's `images/base`) and the
Kubernetes release. Here no registry of images answers, so every piece is built from the
package registries, once, and cached:

    kind v0.33.0, crictl        Go modules (GoTool)          ~/.cache/tunefleet/bin/
    kubelet kubeadm kubectl     k8s.io/kubernetes v1.31.14,  ~/.cache/tunefleet/kube/
      kube-proxy                  deploy/cluster/build.sh (the control plane's compile reused)
    etcd, CoreDNS (the plugins kubeadm's Corefile uses), local-path-provisioner: Go modules
    pause                       kubernetes' pause.c, gcc
    the base image              kind's images/base files, Debian's systemd, containerd, runc
                                and CNI plugins (deploy/kind/base.Dockerfile)
    the node's images           deploy/kind/node-images.Dockerfile, one target each
    the node image              what `kind build node-image` does, below

`kind build node-image --type file` cannot finish here: besides the four images of the release
it fetches every other image kubeadm lists (etcd, CoreDNS, pause) and kindnetd and the storage
images from their registries with `ctr content fetch`, which has no mirror setting and no way
to skip them. So the last step is written out: a container of the base image, the binaries in
/usr/bin, /kind/version, the CNI and storage manifests, every image imported into containerd's
k8s.io namespace (pinned, not unpacked) under the name kubeadm and the manifests use, then
`docker commit` with kind's entrypoint. kindnetd's source is not served by the Go module proxy
(`sigs.k8s.io/kind/images/kindnetd`: 403), so the pod network is deploy/kind/cni-agent.sh,
which sets up what kindnetd sets up (kindnetd's CNI configuration, routes between nodes,
masquerading) but enforces no NetworkPolicy.

The result is `tunefleet-local/kind-node:v1.31.14`, labelled with the hash of its recipe:
rebuilt only when a version or a file of the recipe changes (`python -m tunefleet_dev.kind
install` builds it, make kind-install and make test run that).
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
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tunefleet_dev.images import (
    DEBIAN_IMAGE,
    ROOT,
    Docker,
    _ensure_debian,
    _recipe_key,
    build_ca,
)
from tunefleet_dev.installs import CACHE, GoTool, ToolError, build_script, go_binary

__all__ = [
    "COMPONENTS",
    "KIND",
    "KIND_VERSION",
    "KUBERNETES_VERSION",
    "NODE_IMAGE",
    "ensure_node_image",
    "kind_module_dir",
]

KIND_VERSION = "v0.33.0"
# The control plane's (deploy/cluster/controlplane.py): one compile serves both.
KUBERNETES_VERSION = "v1.31.14"
# What `kubeadm config images list` asks for with KUBERNETES_VERSION (checked when building: a
# Kubernetes bump that changes them stops the build with the versions to put here).
ETCD_VERSION = "v3.5.24"
COREDNS_VERSION = "v1.11.3"
PAUSE_VERSION = "3.10"
LOCAL_PATH_VERSION = "v0.0.30"
# cri-tools: v1.30.0 declares another module path and v1.31.x is refused by the module proxy;
# crictl speaks the stable CRI v1 API, which any release of it shares with Kubernetes 1.31.
CRICTL_VERSION = "v1.37.0"
NODE_IMAGE = f"tunefleet-local/kind-node:{KUBERNETES_VERSION}"
BASE_IMAGE = f"tunefleet-local/kind-base:{KIND_VERSION}"
RECIPES = ROOT / "deploy" / "kind"
_LABEL = "io.tunefleet.recipe"

KIND = GoTool(
    name="kind",
    module="sigs.k8s.io/kind",
    version=KIND_VERSION,
    package="sigs.k8s.io/kind",
    why="kind, the local Kubernetes of make dev and tests/kind (clusters of Docker containers)",
)
CRICTL = GoTool(
    name="crictl",
    module="sigs.k8s.io/cri-tools",
    version=CRICTL_VERSION,
    package="sigs.k8s.io/cri-tools/cmd/crictl",
    why="crictl, in kind's node image (kind load docker-image asks it what the node has)",
    version_variable="sigs.k8s.io/cri-tools/pkg/version.Version",
)
ETCD = GoTool(
    name="etcd",
    module="go.etcd.io/etcd/server/v3",
    version=ETCD_VERSION,
    package="go.etcd.io/etcd/server/v3",
    why="etcd, the kind node's datastore (the version kubeadm asks for)",
)
# The plugins of the Corefile kubeadm writes (and `log`), in plugin.cfg's order, which is the
# order a query passes through them: directive -> package under plugin/.
_COREDNS_PLUGINS = {
    "reload": "reload",
    "ready": "ready",
    "health": "health",
    "prometheus": "metrics",
    "errors": "errors",
    "log": "log",
    "loadbalance": "loadbalance",
    "cache": "cache",
    "kubernetes": "kubernetes",
    "loop": "loop",
    "forward": "forward",
}
COREDNS = GoTool(
    name="coredns",
    module="github.com/coredns/coredns",
    version=COREDNS_VERSION,
    package="github.com/coredns/coredns",
    why="CoreDNS, the kind cluster's DNS (the plugins kubeadm's Corefile uses)",
    main="package main\n\nimport (\n"
    '\t"github.com/coredns/coredns/core/dnsserver"\n'
    '\t"github.com/coredns/coredns/coremain"\n'
    + "".join(f'\t_ "github.com/coredns/coredns/plugin/{p}"\n' for p in _COREDNS_PLUGINS.values())
    + ")\n\nfunc init() {\n\tdnsserver.Directives = []string{"
    + ", ".join(f'"{name}"' for name in _COREDNS_PLUGINS)
    + "}\n}\n\nfunc main() { coremain.Run() }\n",
)
LOCAL_PATH = GoTool(
    name="local-path-provisioner",
    module="github.com/rancher/local-path-provisioner",
    version=LOCAL_PATH_VERSION,
    package="github.com/rancher/local-path-provisioner",
    why="the local-path provisioner, kind's default StorageClass (the StatefulSets' volumes)",
    version_variable="main.VERSION",
)
GO_TOOLS = (KIND, CRICTL, ETCD, COREDNS, LOCAL_PATH)

# Each image in the node: the Dockerfile target that builds it, and kubeadm's (or the
# manifests') repository for it; the tag is the version kubeadm asks for.
COMPONENTS: Mapping[str, str] = {
    "kube-apiserver": "kube",
    "kube-controller-manager": "kube",
    "kube-scheduler": "kube",
    "kube-proxy": "kube-proxy",
    "etcd": "etcd",
    "coredns": "coredns",
    "pause": "pause",
}
# Named by the CNI and storage manifests, which this module writes.
CNI_IMAGE = "tunefleet.local/kind-cni:1"
PROVISIONER_IMAGE = f"tunefleet.local/local-path-provisioner:{LOCAL_PATH_VERSION}"
HELPER_IMAGE = "tunefleet.local/local-path-helper:bookworm"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def kind_module_dir() -> Path:
    """The kind module's source (images/base, the storage manifest), downloaded if missing."""
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off"}
    result = subprocess.run(
        [go_binary(), "mod", "download", "-json", f"sigs.k8s.io/kind@{KIND_VERSION}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        check=False,
    )
    if result.returncode != 0:
        raise ToolError(f"downloading the kind module {KIND_VERSION} failed: {result.stderr}")
    return Path(json.loads(result.stdout)["Dir"])


def kube_node_dir() -> Path:
    return CACHE / "kube" / f"kubernetes-node-{KUBERNETES_VERSION}"


def ensure_kube_node_binaries() -> Path:
    """kubelet, kubeadm, kubectl and kube-proxy, compiled once (deploy/cluster/build.sh)."""
    final = kube_node_dir()
    if all((final / name).exists() for name in ("kubelet", "kubeadm", "kubectl", "kube-proxy")):
        return final
    _say(
        f"building kubelet, kubeadm, kubectl and kube-proxy {KUBERNETES_VERSION} from the "
        f"k8s.io/kubernetes Go module into {final} (once; it reuses the control plane's "
        "compile): kind's node image holds them"
    )
    build_script("kubernetes-node", KUBERNETES_VERSION, final, "the Kubernetes node binaries")
    return final


def ensure_pause() -> Path:
    """kubernetes' pause.c, compiled static (the sandbox every pod's namespaces hang on)."""
    binary = CACHE / "bin" / f"pause-{PAUSE_VERSION}"
    if binary.exists():
        return binary
    source = _kubernetes_module_dir() / "build" / "pause" / "linux" / "pause.c"
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise ToolError("building pause needs a C compiler: apt-get install -y gcc libc6-dev")
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(binary.name + ".partial")
    result = subprocess.run(
        [
            compiler,
            "-Os",
            "-Wall",
            "-static",
            f"-DVERSION=v{PAUSE_VERSION}",
            "-o",
            str(partial),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ToolError(f"compiling pause.c failed: {result.stderr.strip()}")
    subprocess.run(["strip", str(partial)], check=False)
    partial.rename(binary)
    return binary


def _kubernetes_module_dir() -> Path:
    result = subprocess.run(
        [go_binary(), "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off"},
        cwd=tempfile.gettempdir(),
        check=False,
    )
    if result.returncode != 0:
        raise ToolError(f"downloading k8s.io/kubernetes {KUBERNETES_VERSION} failed")
    return Path(json.loads(result.stdout)["Dir"])


def _copy_tree(source: Path, target: Path) -> None:
    """kind's files with kind's modes: scripts 0755, everything else 0644, folders 0755."""
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        executable = path.is_dir() or path.parent.name == "bin"
        path.chmod(0o755 if executable else 0o644)


def storage_manifest(kind_dir: Path) -> str:
    """kind's default storage manifest, naming the provisioner and helper images built here,
    and making `local` volumes instead of `hostPath` ones: the kubelet manages a local volume's
    ownership and permissions (fsGroup) on every mount, as it does a cloud disk's, and ignores
    a hostPath's, which would hide what a pod's fsGroup does to its data on GKE."""
    source = (kind_dir / "pkg" / "build" / "nodeimage" / "const_storage.go").read_text()
    images = {
        "storageProvisionerImage": PROVISIONER_IMAGE,
        "storageHelperImage": HELPER_IMAGE,
    }
    # The Go constant: raw strings joined by the two image constants, `...` + name + `...`.
    match = re.search(
        r"const defaultStorageManifest = ((?:`[^`]*`(?:\s*\+\s*\w+\s*\+\s*)?)+)", source
    )
    if match is None:
        raise ToolError(f"kind {KIND_VERSION}'s storage manifest is not where it was expected")
    parts = re.findall(r"`([^`]*)`|\+\s*(\w+)\s*\+", match.group(1))
    if {name for _, name in parts if name} != set(images):
        raise ToolError(f"kind {KIND_VERSION}'s storage manifest names other images")
    text = "".join(raw or images[name] for raw, name in parts)
    default_class = '    storageclass.kubernetes.io/is-default-class: "true"\n'
    if text.count(default_class) != 1:
        raise ToolError(f"kind {KIND_VERSION}'s StorageClass is not where it was expected")
    return text.replace(default_class, default_class + "    defaultVolumeType: local\n")


def recipe_key(docker: Docker) -> str:
    """What the node image is made of: every version and every recipe file."""
    files = sorted(path for path in RECIPES.iterdir() if path.is_file())
    return _recipe_key(
        KIND_VERSION,
        KUBERNETES_VERSION,
        *(f"{tool.name}={tool.version}" for tool in GO_TOOLS),
        PAUSE_VERSION,
        *(path.read_bytes() for path in files),
        Path(__file__).read_bytes(),
        docker.label(DEBIAN_IMAGE) or "",
    )


def _check(result: subprocess.CompletedProcess[str], what: str) -> str:
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-3000:]
        raise ToolError(f"{what} failed: {tail}")
    return result.stdout


def _build(docker: Docker, context: Path, dockerfile: Path, tag: str, **kwargs: str) -> None:
    target = kwargs.pop("target", "")
    command = ["build", "--quiet", "-f", str(dockerfile), "-t", tag]
    if target:
        command += ["--target", target]
    for name, value in {"DEBIAN_IMAGE": DEBIAN_IMAGE, **kwargs}.items():
        command += ["--build-arg", f"{name}={value}"]
    ca = build_ca()
    if ca is not None:
        command += ["--secret", f"id=ca,src={ca}"]
    _check(docker.run(*command, str(context)), f"building {tag} ({dockerfile.name})")


def _base_image(docker: Docker, kind_dir: Path, crictl: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="tunefleet-kind-base-") as tmp:
        context = Path(tmp)
        _copy_tree(kind_dir / "images" / "base" / "files", context / "files")
        shutil.copy2(crictl, context / "crictl")
        _build(docker, context, RECIPES / "base.Dockerfile", BASE_IMAGE)


def _component_images(
    docker: Docker, binaries: Mapping[str, Path], kube_images: Sequence[str]
) -> dict[str, str]:
    """Builds every image the node holds; returns {local tag: name in the node}."""
    names: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="tunefleet-kind-images-") as tmp:
        context = Path(tmp)
        for name, path in binaries.items():
            shutil.copy2(path, context / name)
        for name in ("cni-agent.sh", "iptables-wrapper"):
            shutil.copy2(RECIPES / name, context / name)
        dockerfile = RECIPES / "node-images.Dockerfile"
        for image in kube_images:
            repository, _, tag = image.rpartition(":")
            component = repository.rpartition("/")[2]
            target = COMPONENTS.get(component)
            if target is None:
                raise ToolError(f"kubeadm asks for {image}, which this recipe does not build")
            local = f"tunefleet-local/kind-{component}:{tag}"
            extra = {"BINARY": component} if target == "kube" else {}
            _build(docker, context, dockerfile, local, target=target, **extra)
            names[local] = image
        for local, image, target in (
            (f"tunefleet-local/kind-cni:{CNI_IMAGE.rpartition(':')[2]}", CNI_IMAGE, "cni"),
            (
                f"tunefleet-local/kind-local-path-provisioner:{LOCAL_PATH_VERSION}",
                PROVISIONER_IMAGE,
                "local-path-provisioner",
            ),
        ):
            _build(docker, context, dockerfile, local, target=target)
            names[local] = image
    names[DEBIAN_IMAGE] = HELPER_IMAGE
    return names


@contextmanager
def _build_container(docker: Docker) -> Iterator[str]:
    """A container of the base image that only sleeps, as kind's node-image build uses."""
    name = f"tunefleet-kind-build-{uuid.uuid4().hex[:8]}"
    _check(
        docker.run(
            "run",
            "-d",
            "--name",
            name,
            "--entrypoint=sleep",
            "--security-opt",
            "seccomp=unconfined",
            BASE_IMAGE,
            "infinity",
        ),
        "starting the node-image build container",
    )
    try:
        yield name
    finally:
        docker.run("rm", "-f", "-v", name)


def _node_image(docker: Docker, kind_dir: Path, kube_dir: Path, names: Mapping[str, str]) -> str:
    with _build_container(docker) as build:

        def node(*args: str, what: str, stdin: str | None = None) -> str:
            result = subprocess.run(
                [docker.program, "exec", "-i", build, *args],
                input=stdin,
                capture_output=True,
                text=True,
                check=False,
            )
            return _check(result, what)

        for binary in ("kubeadm", "kubelet", "kubectl"):
            _check(
                docker.run("cp", str(kube_dir / binary), f"{build}:/usr/bin/{binary}"),
                f"copying {binary} into the node image",
            )
        node(
            "chown",
            "root:root",
            "/usr/bin/kubeadm",
            "/usr/bin/kubelet",
            "/usr/bin/kubectl",
            what="chown",
        )
        node("sh", "-c", "cat > /kind/version", stdin=KUBERNETES_VERSION, what="/kind/version")
        cni = (RECIPES / "cni.yaml").read_text().replace("image: IMAGE", f"image: {CNI_IMAGE}")
        node(
            "sh",
            "-c",
            "mkdir -p /kind/manifests && cat > /kind/manifests/default-cni.yaml",
            stdin=cni,
            what="the CNI manifest",
        )
        node(
            "sh",
            "-c",
            "cat > /kind/manifests/default-storage.yaml",
            stdin=storage_manifest(kind_dir),
            what="the storage manifest",
        )
        node("bash", "-c", "nohup containerd > /dev/null 2>&1 &", what="starting containerd")
        node(
            "bash",
            "-c",
            "for i in $(seq 60); do ctr version >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1",
            what="waiting for containerd in the build container",
        )
        save = subprocess.Popen([docker.program, "save", *names], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [
                docker.program,
                "exec",
                "-i",
                build,
                "ctr",
                "--namespace=k8s.io",
                "images",
                "import",
                "--label=io.cri-containerd.pinned=pinned",
                "--all-platforms",
                "--no-unpack",
                "--digests",
                "-",
            ],
            stdin=save.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        save.wait()
        _check(imported, "importing the images into the node image")
        # `docker save` names them docker.io/<local tag> in the archive: give each the name
        # kubeadm or the manifests use, as kind's build re-tags what it imports.
        for local, image in names.items():
            node(
                "ctr",
                "--namespace=k8s.io",
                "images",
                "tag",
                "--force",
                f"docker.io/{local}",
                image,
                what=f"naming {image}",
            )
            node(
                "ctr",
                "--namespace=k8s.io",
                "images",
                "rm",
                f"docker.io/{local}",
                what=f"removing the local name of {image}",
            )
        # Stopped before the commit, as kind's build does (it stays a zombie of `sleep`: wait
        # for its socket to stop answering, not for the process to go).
        node("pkill", "containerd", what="stopping containerd")
        node(
            "bash",
            "-c",
            "for i in $(seq 30); do ctr version >/dev/null 2>&1 || exit 0; sleep 1; done; exit 1",
            what="waiting for containerd to stop",
        )
        _check(
            docker.run(
                "commit",
                "--change",
                'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]',
                "--change",
                'ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""',
                "--change",
                f"LABEL {_LABEL}={recipe_key(docker)}",
                build,
                NODE_IMAGE,
            ),
            "committing the node image",
        )
    return NODE_IMAGE


def ensure_node_image(docker: Docker | None = None) -> str:
    """The node image, built first unless built from this very recipe; its name."""
    docker = docker or Docker()
    _ensure_debian(docker)
    key = recipe_key(docker)
    if docker.label(NODE_IMAGE) == key:
        return NODE_IMAGE
    started = time.monotonic()
    _say(
        f"building kind's node image {NODE_IMAGE} from the package registries (kindest/node "
        "cannot be pulled; once per version, cached in Docker's image store)"
    )
    kind_dir = kind_module_dir()
    kube_dir = ensure_kube_node_binaries()
    binaries: dict[str, Path] = {
        "etcd": ETCD.ensure(),
        "coredns": COREDNS.ensure(),
        "local-path-provisioner": LOCAL_PATH.ensure(),
        "pause": ensure_pause(),
        **{name: kube_dir / name for name in ("kube-proxy",)},
        **{
            name: CACHE / "kube" / f"kubernetes-{KUBERNETES_VERSION}" / name
            for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
        },
    }
    missing = [str(path) for path in binaries.values() if not path.exists()]
    if missing:
        raise ToolError(f"missing {', '.join(missing)}: run `make cluster-install` first")
    _base_image(docker, kind_dir, CRICTL.ensure())
    listed = subprocess.run(
        [
            str(kube_dir / "kubeadm"),
            "config",
            "images",
            "list",
            "--kubernetes-version",
            KUBERNETES_VERSION,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    kube_images = _check(listed, "kubeadm config images list").split()
    expected = {
        f"registry.k8s.io/etcd:{ETCD_VERSION.lstrip('v')}-0",
        f"registry.k8s.io/coredns/coredns:{COREDNS_VERSION}",
        f"registry.k8s.io/pause:{PAUSE_VERSION}",
    }
    if not expected <= set(kube_images):
        raise ToolError(
            f"kubeadm {KUBERNETES_VERSION} asks for {', '.join(kube_images)}: set ETCD_VERSION, "
            f"COREDNS_VERSION and PAUSE_VERSION in {Path(__file__).name} to match"
        )
    names = _component_images(docker, binaries, kube_images)
    _node_image(docker, kind_dir, kube_dir, names)
    _say(f"built {NODE_IMAGE} in {time.monotonic() - started:.0f} s")
    return NODE_IMAGE
