"""deploy/credentials.py: .env -> the kustomize Secret inputs."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from .conftest import ENV_FILE, ROOT, SERVICES

SCRIPT = ROOT / "deploy" / "credentials.py"


def _run(env_file: Path, k8s: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *flags, str(env_file), str(k8s)],
        capture_output=True,
        text=True,
        check=False,
    )


def _read(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def _written(k8s: Path) -> dict[str, str]:
    return {str(p.relative_to(k8s)): p.read_text() for p in sorted(k8s.rglob("*")) if p.is_file()}


def test_example_passwords_are_refused_for_a_cluster(tmp_path: Path) -> None:
    result = _run(ROOT / ".env.example", tmp_path / "k8s")
    assert result.returncode == 2
    for name in ("RABBITMQ_PASSWORD", "MONGO_PASSWORD"):
        assert f"{name} is .env.example's" in result.stderr
    assert "make dev" in result.stderr
    assert not (tmp_path / "k8s").exists(), "nothing written"


def test_example_passwords_pass_for_a_local_cluster(tmp_path: Path) -> None:
    assert _run(ROOT / ".env.example", tmp_path / "k8s", "--local").returncode == 0
    assert (tmp_path / "k8s/base/credentials/worker.env").exists()


def test_a_short_password_is_refused(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(ENV_FILE.replace("9f8e7d6c5b4a39281706f5e4d3c2b1a0", "s3cret"))
    result = _run(env, tmp_path / "k8s")
    assert result.returncode == 2
    assert "MONGO_PASSWORD has 6 characters" in result.stderr


def test_each_service_gets_users_of_its_own(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(ENV_FILE)
    assert _run(env, tmp_path / "k8s").returncode == 0
    base = tmp_path / "k8s" / "base" / "credentials"
    seen = set()
    for service in (*SERVICES, "dashboard"):
        urls = _read(base / f"{service}.env")
        assert set(urls) == {"RABBITMQ_URL", "MONGODB_URL"}
        rabbit, mongo = urlsplit(urls["RABBITMQ_URL"]), urlsplit(urls["MONGODB_URL"])
        assert (rabbit.hostname, rabbit.port, rabbit.path) == ("rabbitmq", 5672, "/%2F")
        assert (mongo.hostname, mongo.port, mongo.query) == ("mongodb", 27017, "authSource=admin")
        assert rabbit.username == mongo.username == f"tunefleet-{service}"
        for password in (rabbit.password or "", mongo.password or ""):
            assert len(password) == 40
            assert password not in ENV_FILE
            seen.add(password)
    assert len(seen) == 2 * (len(SERVICES) + 1), "no two users share a password"
    mongo_env = _read(tmp_path / "k8s/components/mongodb/credentials/mongodb.env")
    assert mongo_env["MONGO_INITDB_ROOT_USERNAME"] == "root"
    listed = dict(p.split("=", 1) for p in mongo_env["TUNEFLEET_MONGODB_USERS"].split(","))
    for service in SERVICES:
        mongo = urlsplit(_read(base / f"{service}.env")["MONGODB_URL"])
        assert listed[f"tunefleet-{service}"] == mongo.password
    # The dashboard only reads: users.js gives it `read`, not `readWrite`.
    assert "tunefleet-dashboard" not in listed
    dashboard = urlsplit(_read(base / "dashboard.env")["MONGODB_URL"])
    assert mongo_env["TUNEFLEET_MONGODB_READERS"] == f"tunefleet-dashboard={dashboard.password}"
    assert (base / "worker.env").stat().st_mode & 0o077 == 0


def test_the_broker_stores_what_the_services_present(tmp_path: Path) -> None:
    """RabbitMQ's sha256 scheme: base64(salt + SHA-256(salt + password)); test_broker_users
    logs in with them on a real node."""
    env = tmp_path / ".env"
    env.write_text(ENV_FILE)
    assert _run(env, tmp_path / "k8s").returncode == 0
    definitions = json.loads(
        (tmp_path / "k8s/components/rabbitmq/credentials/definitions.json").read_text()
    )
    assert definitions == json.loads(
        (tmp_path / "k8s/components/rabbitmq-cluster/credentials/definitions.json").read_text()
    )
    hashes = {u["name"]: base64.b64decode(u["password_hash"]) for u in definitions["users"]}
    for service in (*SERVICES, "dashboard"):
        password = urlsplit(
            _read(tmp_path / f"k8s/base/credentials/{service}.env")["RABBITMQ_URL"]
        ).password
        stored = hashes[f"tunefleet-{service}"]
        salt = stored[:4]
        assert stored[4:] == hashlib.sha256(salt + (password or "").encode()).digest()


def test_the_same_env_gives_the_same_files_and_a_new_password_new_ones(tmp_path: Path) -> None:
    """An unchanged deploy changes no Secret (nothing restarts); a rotated administrator
    password rotates every password derived from it."""
    env = tmp_path / ".env"
    env.write_text(ENV_FILE)
    assert _run(env, tmp_path / "a").returncode == 0
    assert _run(env, tmp_path / "b").returncode == 0
    assert _written(tmp_path / "a") == _written(tmp_path / "b")
    env.write_text(ENV_FILE.replace("0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e", "1" * 32))
    assert _run(env, tmp_path / "c").returncode == 0
    before, after = _written(tmp_path / "a"), _written(tmp_path / "c")
    for service in SERVICES:
        name = f"base/credentials/{service}.env"
        old, new = _read_text(before[name]), _read_text(after[name])
        assert urlsplit(old["RABBITMQ_URL"]).password != urlsplit(new["RABBITMQ_URL"]).password
        assert old["MONGODB_URL"] == new["MONGODB_URL"], "the database's passwords stay"


def _read_text(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_a_managed_database_and_any_characters(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# comment\nRABBITMQ_USER=rab\nRABBITMQ_PASSWORD='p@ss:w/rd#1-long-enough'\n"
        'MONGO_USER=mon\nMONGO_PASSWORD="x%y z-long-enough-too"\nWORKERS=3\n'
        "MONGODB_ADDRESS=mongodb+srv://cluster0.abcde.mongodb.net/?retryWrites=true&w=majority\n"
    )
    assert _run(env, tmp_path / "k8s").returncode == 0, "quotes stripped, any character kept"
    store = urlsplit(_read(tmp_path / "k8s/base/credentials/collector.env")["MONGODB_URL"])
    assert (store.scheme, store.hostname, store.port) == (
        "mongodb+srv",
        "cluster0.abcde.mongodb.net",
        None,
    )
    assert store.query == "retryWrites=true&w=majority"
    admin = _read(tmp_path / "k8s/components/rabbitmq-cluster/credentials/admin.env")
    assert admin["password"] == "p@ss:w/rd#1-long-enough"
    mongo_env = _read(tmp_path / "k8s/components/mongodb/credentials/mongodb.env")
    assert mongo_env["MONGO_INITDB_ROOT_PASSWORD"] == "x%y z-long-enough-too"
    keda = urlsplit(
        _read(tmp_path / "k8s/components/keda-workers/credentials/management.env")["host"]
    )
    assert (keda.scheme, keda.hostname, keda.port, unquote(keda.path)) == (
        "http",
        "rabbitmq.tunefleet.svc",
        15672,
        "//",
    )


@pytest.mark.parametrize("missing", ["RABBITMQ_PASSWORD", "MONGO_USER"])
def test_a_missing_value_is_refused_by_name(tmp_path: Path, missing: str) -> None:
    lines = [line for line in ENV_FILE.splitlines() if not line.startswith(missing)]
    env = tmp_path / ".env"
    env.write_text("\n".join(lines) + "\n")
    result = _run(env, tmp_path / "k8s")
    assert result.returncode != 0
    assert missing in result.stderr
    assert not (tmp_path / "k8s").exists()


def test_no_env_file_says_what_to_do(tmp_path: Path) -> None:
    result = _run(tmp_path / ".env", tmp_path / "k8s")
    assert result.returncode == 2
    assert ".env.example" in result.stderr


def _users_js(
    tmp_path: Path, harness: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """users.js under node, mongosh's `connect` and `print` given by `harness` (JavaScript)."""
    import shutil

    node = shutil.which("node")
    assert node, "node runs users.js here (a dependency of the machine, like Go)"
    script = tmp_path / "harness.js"
    script.write_text(
        harness + "\nrequire('vm').runInThisContext(require('fs').readFileSync(process.argv[2], "
        "'utf8'));\nconsole.log(JSON.stringify(calls));\n"
    )
    users = ROOT / "k8s/components/mongodb/users.js"
    return subprocess.run(
        [node, str(script), str(users)], capture_output=True, text=True, env=env, check=False
    )


def test_users_js_creates_or_updates_each_user_with_readwrite_on_the_database(
    tmp_path: Path,
) -> None:
    """The mongosh script, run by node with a recording stand-in for mongosh's `connect`."""
    harness = """
const calls = [];
const existing = new Set(['tunefleet-worker']);
global.print = (line) => calls.push(['print', line]);
global.connect = (url) => { calls.push(['connect', url]); return { getSiblingDB: (name) => ({
  getUser: (user) => (existing.has(user) ? { user } : null),
  createUser: (spec) => calls.push(['create', name, spec]),
  updateUser: (user, spec) => calls.push(['update', name, user, spec]),
}) }; };
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "MONGO_INITDB_ROOT_USERNAME": "root",
        "MONGO_INITDB_ROOT_PASSWORD": "p@ss word",
        "MONGODB_DATABASE": "tunefleet",
        "TUNEFLEET_MONGODB_USERS": "tunefleet-publisher=a1,tunefleet-worker=b2",
        "TUNEFLEET_MONGODB_READERS": "tunefleet-dashboard=c3",
    }
    result = _users_js(tmp_path, harness, env)
    assert result.returncode == 0, result.stderr
    calls = json.loads(result.stdout)
    roles = [{"role": "readWrite", "db": "tunefleet"}]
    read = [{"role": "read", "db": "tunefleet"}]
    assert calls[0] == [
        "connect",
        "mongodb://root:p%40ss%20word@127.0.0.1:27017/admin?authSource=admin"
        "&serverSelectionTimeoutMS=5000",
    ]
    assert calls[1] == [
        "create",
        "admin",
        {"user": "tunefleet-publisher", "pwd": "a1", "roles": roles},
    ]
    assert calls[2] == ["update", "admin", "tunefleet-worker", {"pwd": "b2", "roles": roles}]
    dashboard = {"user": "tunefleet-dashboard", "pwd": "c3", "roles": read}
    assert calls[3] == ["create", "admin", dashboard]
    assert calls[4][0] == "print" and "tunefleet-dashboard (read)" in calls[4][1]
    # Without its inputs it fails (the postStart hook retries, then the container restarts).
    del env["TUNEFLEET_MONGODB_USERS"]
    failed = _users_js(tmp_path, harness, env)
    assert failed.returncode != 0
    assert "TUNEFLEET_MONGODB_USERS" in failed.stderr


def test_users_js_makes_users_without_roles_where_the_server_has_none(tmp_path: Path) -> None:
    """FerretDB (the stand-in for mongod) refuses roles; users.js then makes the users without
    them and says so, and still fails on any other error."""
    harness = """
const calls = [];
const existing = new Set(['tunefleet-worker']);
const refuse = (spec) => {
  if (spec.roles && spec.roles.length) {
    throw new Error(process.env.REFUSAL);
  }
};
global.print = (line) => calls.push(['print', line]);
global.connect = (url) => ({ getSiblingDB: (name) => ({
  getUser: (user) => (existing.has(user) ? { user } : null),
  createUser: (spec) => { refuse(spec); calls.push(['create', spec]); },
  updateUser: (user, spec) => { refuse(spec); calls.push(['update', user, spec]); },
}) });
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "MONGO_INITDB_ROOT_USERNAME": "root",
        "MONGO_INITDB_ROOT_PASSWORD": "pw",
        "MONGODB_DATABASE": "tunefleet",
        "TUNEFLEET_MONGODB_USERS": "tunefleet-publisher=a1,tunefleet-worker=b2",
        # FerretDB 1.24's answer, as the in-cluster stand-in gave it (tests/kind).
        "REFUSAL": 'createUser: support for field "roles" with non-default value &{[0x1] false} '
        "is not implemented yet",
    }
    result = _users_js(tmp_path, harness, env)
    assert result.returncode == 0, result.stderr
    calls = json.loads(result.stdout)
    assert calls[:2] == [
        ["create", {"user": "tunefleet-publisher", "pwd": "a1", "roles": []}],
        ["update", "tunefleet-worker", {"pwd": "b2"}],
    ]
    assert calls[2][0] == "print" and "no roles" in calls[2][1]
    env["REFUSAL"] = "createUser: not authorized on admin"
    failed = _users_js(tmp_path, harness, env)
    assert failed.returncode != 0 and "not authorized" in failed.stderr
