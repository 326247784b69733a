"""Which base images the builds and compose use: the official ones, or local stand-ins.

The Dockerfile and docker-compose.yml name the official images as defaults (python slim, the
uv image, rabbitmq, mongo) behind four variables: PYTHON_IMAGE, UV_IMAGE, RABBITMQ_IMAGE,
MONGO_IMAGE. For each, in this order: the variable when set; the official image when it is
here or can be pulled; else a stand-in built here from the package registries alone (Debian,
PyPI, the npm registry, the Go module proxy), once, cached by its recipe:

    tunefleet-local/debian    debootstrap --variant=minbase of Debian bookworm, the others' base
    tunefleet-local/python    Debian's Python 3.11                    (python.Dockerfile)
    tunefleet-local/uv        the uv binaries from its PyPI wheel     (uv.Dockerfile)
    tunefleet-local/rabbitmq  Debian's rabbitmq-server                (rabbitmq.Dockerfile)
    tunefleet-local/ferretdb  FerretDB and mongosh                    (mongo.Dockerfile)

(the recipes are in deploy/images/)

    python -m tunefleet_dev.images resolve       VAR=image lines for the four (stdout)
    python -m tunefleet_dev.images build-args    the `docker build` arguments for the Dockerfile

A build behind a network that inspects TLS gets that network's CA as the build secret `ca`,
taken from TUNEFLEET_BUILD_CA, SSL_CERT_FILE, PIP_CERT or REQUESTS_CA_BUNDLE (the first that
names a file); nothing is passed, or baked into an image, where none is set.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tunefleet_dev.installs import FERRETDB_VERSION, ToolError, apt_install, cli, ensure_ferretdb

__all__ = [
    "ROOT",
    "VARIABLES",
    "Resolution",
    "build_args",
    "build_ca",
    "ensure_standin",
    "official_defaults",
    "resolve",
    "standins",
]

ROOT = Path(__file__).resolve().parents[4]
RECIPES = ROOT / "deploy" / "images"
VARIABLES = ("PYTHON_IMAGE", "UV_IMAGE", "RABBITMQ_IMAGE", "MONGO_IMAGE")
_LABEL = "io.tunefleet.recipe"
DEBIAN_SUITE = "bookworm"
DEBIAN_IMAGE = f"tunefleet-local/debian:{DEBIAN_SUITE}"
MONGOSH_VERSION = "2.12.0"
# mongosh 2.12 needs Node.js 20 or later (Debian bookworm has 18).
NODE_VERSION = "22.23.5"


def official_defaults(root: Path = ROOT) -> dict[str, str]:
    """The defaults as the files state them: the Dockerfile's ARGs, compose's `${VAR:-...}`."""
    dockerfile = (root / "Dockerfile").read_text()
    compose = (root / "docker-compose.yml").read_text()
    found: dict[str, str] = {}
    for variable in VARIABLES:
        match = re.search(rf"^ARG {variable}=(\S+)$", dockerfile, re.M) or re.search(
            rf"\$\{{{variable}:-([^}}]+)\}}", compose
        )
        if match is None:
            raise ToolError(f"no default for {variable} in the Dockerfile or docker-compose.yml")
        found[variable] = match.group(1)
    return found


def build_ca(env: Mapping[str, str] = os.environ) -> Path | None:
    for variable in ("TUNEFLEET_BUILD_CA", "SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"):
        value = env.get(variable, "")
        if value and Path(value).is_file():
            return Path(value)
    return None


@dataclass(frozen=True)
class StandIn:
    """A local image that stands in for an official one, and how it is built."""

    tag: str
    recipe: str  # a file under deploy/images
    args: Mapping[str, str] = field(default_factory=dict)
    # Files of the build context besides the recipe's directory (name -> source).
    extra_context: Mapping[str, str] = field(default_factory=dict)


def _python_tag() -> str:
    return "tunefleet-local/python:3.11-bookworm"


def standins(defaults: Mapping[str, str] | None = None) -> dict[str, StandIn]:
    """Each variable's stand-in (read from the repository's files when asked: the tests'
    image, which imports this module through the fixtures, has no Dockerfile)."""
    defaults = defaults or official_defaults()
    uv_version = defaults["UV_IMAGE"].rpartition(":")[2]
    return {
        "PYTHON_IMAGE": StandIn(_python_tag(), "python.Dockerfile", {"DEBIAN_IMAGE": DEBIAN_IMAGE}),
        "UV_IMAGE": StandIn(
            f"tunefleet-local/uv:{uv_version}",
            "uv.Dockerfile",
            {"PYTHON_IMAGE": _python_tag(), "UV_VERSION": uv_version},
        ),
        "RABBITMQ_IMAGE": StandIn(
            "tunefleet-local/rabbitmq:3.10-management",
            "rabbitmq.Dockerfile",
            {"DEBIAN_IMAGE": DEBIAN_IMAGE},
        ),
        "MONGO_IMAGE": StandIn(
            f"tunefleet-local/ferretdb:{FERRETDB_VERSION.lstrip('v')}",
            "mongo.Dockerfile",
            {
                "DEBIAN_IMAGE": DEBIAN_IMAGE,
                "MONGOSH_VERSION": MONGOSH_VERSION,
                "NODE_VERSION": NODE_VERSION,
            },
            {"ferretdb": "ferretdb", "mongo-entrypoint.sh": "mongo-entrypoint.sh"},
        ),
    }


def _recipe_key(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


class Docker:
    """The docker CLI, as the caller names it (make's DOCKER), and what it says of images."""

    def __init__(self, program: str = "docker") -> None:
        self.program = program

    def run(
        self, *args: str, timeout: float | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.program, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "DOCKER_BUILDKIT": "1", **(env or {})},
            check=False,
        )

    def prune_dangling(self) -> None:
        """Remove the untagged images that rebuilding ours left (a rebuilt tag leaves its old
        image behind: a gigabyte for a worker at each code change): only those built from this
        project's recipes (their label), and only where no container uses them."""
        self.run("image", "prune", "--force", "--filter", f"label={_LABEL}", timeout=300)

    def remove_tagged(self, repository_prefix: str, tag_prefix: str) -> int:
        """Remove every image tagged REPOSITORY:TAG with those prefixes; how many tags went."""
        listed = self.run("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", timeout=60)
        names = [
            name
            for name in listed.stdout.split()
            if name.startswith(repository_prefix) and name.partition(":")[2].startswith(tag_prefix)
        ]
        if names:
            self.run("image", "rm", "--force", *names, timeout=300)
        return len(names)

    def label(self, image: str) -> str | None:
        """The image's recipe label; None if the image is not here."""
        template = f'{{{{index .Config.Labels "{_LABEL}"}}}}'
        result = self.run("image", "inspect", "--format", template, image)
        return result.stdout.strip() if result.returncode == 0 else None

    def pull(self, image: str) -> str | None:
        """None if pulled; else the reason it could not be."""
        try:
            result = self.run("pull", "--quiet", image, timeout=120)
        except subprocess.TimeoutExpired:
            return "no answer within 120 s"
        if result.returncode == 0:
            return None
        lines = (result.stderr or result.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit status {result.returncode}"

    def build(
        self,
        tag: str,
        dockerfile: Path,
        context: Path,
        args: Mapping[str, str],
        key: str,
    ) -> None:
        command = ["build", "--quiet", "-f", str(dockerfile), "-t", tag]
        command += ["--label", f"{_LABEL}={key}"]
        for name, value in args.items():
            command += ["--build-arg", f"{name}={value}"]
        ca = build_ca()
        if ca is not None:
            command += ["--secret", f"id=ca,src={ca}"]
        result = self.run(*command, str(context))
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip()[-3000:]
            raise ToolError(f"building the stand-in {tag} from {dockerfile.name} failed: {tail}")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _debian_sources() -> tuple[str, str]:
    """The Debian mirror this machine's apt uses, and sources for the image to keep using it."""
    release = Path("/etc/os-release")
    on_bookworm = release.exists() and f"VERSION_CODENAME={DEBIAN_SUITE}" in release.read_text()
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if on_bookworm and deb822.exists():
        text = deb822.read_text()
        uris = re.findall(r"^URIs:\s*(\S+)", text, re.M)
        if uris:
            return uris[0], text
    mirror = "http://deb.debian.org/debian"
    sources = (
        f"Types: deb\nURIs: {mirror}\nSuites: {DEBIAN_SUITE} {DEBIAN_SUITE}-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: http://deb.debian.org/debian-security\n"
        f"Suites: {DEBIAN_SUITE}-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    return mirror, sources


def _ensure_debian(docker: Docker) -> None:
    script = RECIPES / "debian-rootfs.sh"
    mirror, sources = _debian_sources()
    key = _recipe_key(script.read_bytes(), mirror, sources)
    if docker.label(DEBIAN_IMAGE) == key:
        return
    if shutil.which("debootstrap") is None:
        apt_install("debootstrap", "it makes the Debian base of the stand-in images")
    _say(f"building {DEBIAN_IMAGE} (debootstrap of Debian {DEBIAN_SUITE}, about 2 minutes, once)")
    with tempfile.TemporaryDirectory(prefix="tunefleet-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        sources_file = Path(tmp) / "debian.sources"
        sources_file.write_text(sources)
        result = subprocess.run(
            ["sh", str(script), DEBIAN_SUITE, str(rootfs), mirror, str(sources_file)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = result.stderr.strip()[-2000:]
            raise ToolError(f"debootstrap of {DEBIAN_SUITE} failed: {tail}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [
                docker.program,
                "import",
                "--change",
                'CMD ["bash"]',
                "--change",
                f"LABEL {_LABEL}={key}",
                "-",
                DEBIAN_IMAGE,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ToolError(f"docker import of the Debian base failed: {imported.stderr.strip()}")


def ensure_standin(variable: str, docker: Docker) -> str:
    """The stand-in for `variable`, built first unless built from this very recipe; its key."""
    standin = standins()[variable]
    dockerfile = RECIPES / standin.recipe
    extra = {name: (RECIPES / source) for name, source in standin.extra_context.items()}
    if "ferretdb" in extra:
        extra["ferretdb"] = ensure_ferretdb()
    base_keys = []
    for value in standin.args.values():
        if value == DEBIAN_IMAGE:
            _ensure_debian(docker)
            base_keys.append(docker.label(DEBIAN_IMAGE) or "")
        elif value == _python_tag():
            base_keys.append(ensure_standin("PYTHON_IMAGE", docker))
    key = _recipe_key(
        dockerfile.read_bytes(),
        *(f"{name}={value}" for name, value in sorted(standin.args.items())),
        *(path.read_bytes() for _, path in sorted(extra.items()) if path.name != "ferretdb"),
        FERRETDB_VERSION if "ferretdb" in extra else "",
        *base_keys,
    )
    if docker.label(standin.tag) == key:
        return key
    _say(f"building the stand-in {standin.tag} ({standin.recipe}, once)")
    with tempfile.TemporaryDirectory(prefix="tunefleet-image-") as tmp:
        context = Path(tmp)
        for name, path in extra.items():
            shutil.copy2(path, context / name)
        docker.build(standin.tag, dockerfile, context, standin.args, key)
    return key


@dataclass
class Resolution:
    """The image chosen for each variable, and why (for the one line a run prints)."""

    images: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        return "".join(f"\n  {v}={self.images[v]} ({self.reasons[v]})" for v in self.images)


def resolve(
    variables: Sequence[str] = VARIABLES,
    docker: Docker | None = None,
    env: Mapping[str, str] = os.environ,
) -> Resolution:
    """The image for each variable: the environment's, the official one, or a stand-in."""
    docker = docker or Docker()
    defaults = official_defaults()
    chosen = Resolution()
    for variable in variables:
        if env.get(variable):
            image, reason = env[variable], f"{variable} is set"
            if docker.label(image) is None and (why := docker.pull(image)) is not None:
                raise ToolError(
                    f"{variable}={image} is neither here nor can it be pulled ({why}): "
                    f"unset {variable} to use the default, or pull or build that image"
                )
        elif docker.label(defaults[variable]) is not None:
            image, reason = defaults[variable], "official, here"
        elif (why := docker.pull(defaults[variable])) is None:
            image, reason = defaults[variable], "official, pulled"
        else:
            ensure_standin(variable, docker)
            image = standins(defaults)[variable].tag
            reason = f"a stand-in: {defaults[variable]} cannot be pulled: {why}"
        chosen.images[variable], chosen.reasons[variable] = image, reason
    return chosen


def build_args(resolution: Resolution) -> list[str]:
    """`docker build` arguments for the Dockerfile: its two bases and the CA secret if any."""
    args: list[str] = []
    for variable in ("PYTHON_IMAGE", "UV_IMAGE"):
        if variable in resolution.images:
            args += ["--build-arg", f"{variable}={resolution.images[variable]}"]
    ca = build_ca()
    if ca is not None:
        args += ["--secret", f"id=ca,src={ca}"]
    return args


def _dispatch(args: list[str]) -> int | None:
    program = "docker"
    if len(args) == 3 and args[1] == "--docker":
        args, program = args[:1], args[2]
    if args == ["resolve"]:
        resolution = resolve(docker=Docker(program))
        _say(f"images: {resolution.summary()}")
        print("\n".join(f"{k}={v}" for k, v in resolution.images.items()))
    elif args == ["build-args"]:
        resolution = resolve(("PYTHON_IMAGE", "UV_IMAGE"), Docker(program))
        _say(f"images: {resolution.summary()}")
        print(" ".join(build_args(resolution)))
    else:
        return None
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli(_dispatch, __doc__ or "", argv)


if __name__ == "__main__":
    raise SystemExit(main())
