"""The Tiltfile, evaluated as Starlark against stubs of Tilt's builtins.

Each stub records its call; the test then checks that every image, path, Dockerfile target,
Kubernetes resource and make target the Tiltfile names exists.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import starlark_go

from .conftest import ROOT, SERVICES, find

# Tilt's builtins as Starlark functions that append their arguments to CALLS. (Python
# callables passed into starlark-go crash the interpreter, so the stubs are Starlark too.)
STUBS = """
CALLS = []
TRIGGER_MODE_MANUAL = "manual"
TRIGGER_MODE_AUTO = "auto"
def _record(fn, args, kwargs):
    CALLS.append({"fn": fn, "args": list(args), "kwargs": kwargs})
def allow_k8s_contexts(*args, **kwargs): _record("allow_k8s_contexts", args, kwargs)
def update_settings(*args, **kwargs): _record("update_settings", args, kwargs)
def secret_settings(*args, **kwargs): _record("secret_settings", args, kwargs)
def k8s_yaml(*args, **kwargs): _record("k8s_yaml", args, kwargs)
def kustomize(path, **kwargs):
    _record("kustomize", [path], kwargs)
    return "kustomize:" + path
def blob(text): return "blob:" + text
def read_json(path, default=None):
    _record("read_json", [path], {})
    return LOCAL_CONFIG if LOCAL_CONFIG != None else default
def _os_getenv(name, default=None):
    return ENVIRONMENT.get(name, default)
def docker_build(*args, **kwargs): _record("docker_build", args, kwargs)
def sync(src, dest): return {"sync": [src, dest]}
def run(cmd, trigger=[]): return {"run": cmd, "trigger": trigger}
def fall_back_on(files): return {"fall_back_on": files}
def k8s_resource(*args, **kwargs): _record("k8s_resource", args, kwargs)
def local_resource(*args, **kwargs): _record("local_resource", args, kwargs)
"""


def evaluate(
    text: str, config: dict[str, Any] | None = None, environment: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The calls the Tiltfile makes; `config` is what .tunefleet/dev/tilt.json would hold (none
    by default), `environment` what os.getenv sees."""
    # `load()` of an extension makes `tilt up` fetch it from GitHub: the Tiltfile must not
    # need the network (and starlark-go has no loader, so a load fails here too).
    assert "ext://" not in text, "the Tiltfile loads a Tilt extension"
    # Tilt's `os` module is a struct, which starlark-go lacks: its one function used, renamed.
    given = f"LOCAL_CONFIG = {json.dumps(config)}\nENVIRONMENT = {json.dumps(environment or {})}\n"
    program = STUBS + given.replace("null", "None") + text.replace("os.getenv(", "_os_getenv(")
    # Tilt's dialect: top-level for/if and reassignment allowed, as in Tilt itself.
    starlark_go.configure_starlark(allow_set=True, allow_global_reassign=True)
    interpreter = starlark_go.Starlark()
    interpreter.exec(program, filename="Tiltfile")
    calls: list[dict[str, Any]] = interpreter.get("CALLS")
    return calls


@pytest.fixture(scope="module")
def calls() -> list[dict[str, Any]]:
    return evaluate((ROOT / "Tiltfile").read_text())


def _of(calls: list[dict[str, Any]], *fns: str) -> list[dict[str, Any]]:
    return [c for c in calls if c["fn"] in fns]


def test_tiltfile_evaluates_and_deploys_the_dev_overlay(calls: list[dict[str, Any]]) -> None:
    (contexts,) = _of(calls, "allow_k8s_contexts")
    assert contexts["args"] == ["kind-tunefleet"]
    make = (ROOT / "mk" / "deploy.mk").read_text()
    assert "KIND_CLUSTER ?= tunefleet" in make
    (deploy,) = _of(calls, "k8s_yaml")
    assert deploy["args"] == ["blob:kustomize:k8s/dev"]
    assert (ROOT / "k8s" / "dev" / "kustomization.yaml").exists()
    # The local cluster's Secrets come from this machine's .env: Tilt shows its log unscrubbed.
    (secrets,) = _of(calls, "secret_settings")
    assert secrets["kwargs"] == {"disable_scrub": True}


def test_images_paths_and_targets_exist(
    calls: list[dict[str, Any]], rendered: dict[str, list[dict[str, Any]]]
) -> None:
    builds = {c["args"][0]: c for c in _of(calls, "docker_build")}
    images_in_manifests = {
        c["image"].partition(":")[0]
        for d in rendered["dev"]
        if d["kind"] in {"Deployment", "StatefulSet"}
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    mounts = {
        m["mountPath"]
        for d in rendered["dev"]
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
        for m in c.get("volumeMounts", [])
    }
    dockerfile = (ROOT / "Dockerfile").read_text()
    # The services' images and the client's, which the dashboard runs.
    images = {f"tunefleet-{s}" for s in (*SERVICES, "client")}
    # The commands as the pods run them (the dev overlay leaves them to Tilt's entrypoint).
    commands = {
        c["image"].rpartition("/")[2].partition("@")[0]: c["command"]
        for d in rendered["gke"]
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    # Each service: its Dockerfile target as `<image>-base`, and `<image>` on top of it with
    # the restart wrapper (the Tiltfile's docker_build_with_restart).
    assert set(builds) == images | {f"{i}-base" for i in images}
    for ref in images:
        base, build = builds[f"{ref}-base"], builds[ref]
        context = base["args"][1]
        kwargs = base["kwargs"]
        assert ref in images_in_manifests, f"{ref} is built but no manifest uses it"
        assert (ROOT / context / kwargs["dockerfile"]).is_file()
        assert re.search(rf"^FROM \S+ AS {kwargs['target']}$", dockerfile, re.M)
        for arg in kwargs.get("build_args", {}):
            assert f"ARG {arg}=" in dockerfile
        assert kwargs["build_args"]["VENV_OWNER"] == "10001:10001"
        for path in kwargs["only"]:
            assert (ROOT / context / path).exists(), path
        wrapper = build["kwargs"]
        assert build["args"][1] == context
        assert wrapper["only"] == kwargs["only"]
        lines = wrapper["dockerfile_contents"].splitlines()
        assert lines[0].startswith("FROM tiltdev/restart-helper:20")
        assert f"FROM {ref}-base" in lines
        restart_file = wrapper["entrypoint"][1].removeprefix("--watch_file=")
        assert wrapper["entrypoint"][0] == "/tilt-restart-wrapper"
        # What the Deployment runs, restarted on every live update.
        assert wrapper["entrypoint"][2:] == commands[ref]
        if commands[ref][:2] == ["python", "-m"]:
            assert f'CMD ["python", "-m", "{commands[ref][2]}"]' in dockerfile
        *steps, restart = wrapper["live_update"]
        assert restart == {"run": f"date > {restart_file}", "trigger": []}
        for step in steps:
            if "sync" in step:
                source, dest = step["sync"]
                assert (ROOT / source).is_dir(), source
                assert dest.startswith("/app/.venv/lib/python3.11/site-packages/")
                assert any(source.startswith(p) for p in kwargs["only"]), source
            if "fall_back_on" in step:
                assert all((ROOT / f).exists() for f in step["fall_back_on"])
        # The wrapper watches this file; a volume mounted over it would hide it, and only the
        # venv is writable by the image's user in dev builds.
        assert restart_file.startswith("/app/.venv/")
        assert f'RUN ["touch", "{restart_file}"]' in lines
        for mount in mounts:
            assert not restart_file.startswith(mount.rstrip("/") + "/"), (restart_file, mount)


def test_resources_exist_and_are_grouped(
    calls: list[dict[str, Any]], rendered: dict[str, list[dict[str, Any]]]
) -> None:
    docs = rendered["dev"]
    workload_names = {
        d["metadata"]["name"] for d in docs if d["kind"] in {"Deployment", "StatefulSet"}
    }
    resources = {c["args"][0]: c["kwargs"] for c in _of(calls, "k8s_resource")}
    assert set(resources) == workload_names
    local = {c["args"][0]: c["kwargs"] for c in _of(calls, "local_resource")}
    every = set(resources) | set(local)
    for name, kwargs in {**resources, **local}.items():
        assert kwargs.get("labels"), f"{name} has no label group"
        assert set(kwargs.get("resource_deps", [])) <= every, name
    forwards = {f for kw in resources.values() for f in kw.get("port_forwards", [])}
    assert {"15672:15672", "27017:27017", "8765:8765"} <= forwards
    dashboard = {p["port"] for p in find(docs, "Service", "dashboard")["spec"]["ports"]}
    assert dashboard == {8765}
    service = {p["port"] for p in find(docs, "Service", "rabbitmq")["spec"]["ports"]}
    assert {5672, 15672} <= service
    assert "tests" in local
    for kwargs in local.values():
        target = kwargs.get("cmd", "").removeprefix("make ")
        dry = subprocess.run(
            ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert dry.returncode == 0 or ".env" in dry.stderr, dry.stderr


def test_the_stubs_catch_an_unknown_builtin() -> None:
    with pytest.raises(starlark_go.StarlarkError):
        evaluate("helm_resource('x', 'chart')\n")
    with pytest.raises(AssertionError):
        evaluate("load('ext://helm_resource', 'helm_resource')\n")


def test_local_configuration_replaces_images_and_moves_ports_and_cluster() -> None:
    """Where the official images cannot be pulled, tunefleet_dev.kind writes stand-ins into a
    git-ignored file that the Tiltfile reads; the Tiltfile itself names only the official ones."""
    text = (ROOT / "Tiltfile").read_text()
    rabbitmq = re.search(
        r"image: (\S+)", (ROOT / "k8s/components/rabbitmq/rabbitmq.yaml").read_text()
    )
    assert rabbitmq is not None and "tunefleet-local" not in text
    config = {
        "build_args": {"PYTHON_IMAGE": "local/python:1", "UV_IMAGE": "local/uv:1"},
        "secrets": ["id=ca,src=/etc/ca.pem"],
        "restart_helper": "local/restart-helper:1",
        "images": {"kustomize": "standin"},
        "ports": {"5672": 15673, "27017": 27018},
    }
    calls = evaluate(text, config, {"KIND_CLUSTER": "other", "TUNEFLEET_DEV_CONFIG": "/x.json"})
    assert _of(calls, "allow_k8s_contexts")[0]["args"] == ["kind-other"]
    assert _of(calls, "read_json")[0]["args"] == ["/x.json"]
    assert _of(calls, "k8s_yaml")[0]["args"] == ["blob:standin:k8s/dev"]
    for build in _of(calls, "docker_build"):
        kwargs = build["kwargs"]
        if build["args"][0].endswith("-base"):
            assert kwargs["build_args"] == {**config["build_args"], "VENV_OWNER": "10001:10001"}
            assert kwargs["secret"] == config["secrets"]
        else:
            assert kwargs["dockerfile_contents"].startswith("FROM local/restart-helper:1 ")
    forwards = {f for c in _of(calls, "k8s_resource") for f in c["kwargs"].get("port_forwards", [])}
    assert forwards == {"15673:5672", "15672:15672", "27018:27017", "8765:8765"}
    without = evaluate(text)
    assert _of(without, "read_json")[0]["args"] == [".tunefleet/dev/tilt.json"]
    assert all(b["kwargs"].get("secret", []) == [] for b in _of(without, "docker_build"))
