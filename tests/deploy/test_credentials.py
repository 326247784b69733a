"""deploy/credentials.py: .env -> the kustomize Secret inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from .conftest import ROOT

SCRIPT = ROOT / "deploy" / "credentials.py"


def _run(env_file: Path, k8s: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(env_file), str(k8s)],
        capture_output=True,
        text=True,
        check=False,
    )


def _read(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_passwords_with_any_characters_survive_in_the_urls(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# comment\nRABBITMQ_USER=rab\nRABBITMQ_PASSWORD='p@ss:w/rd#1'\n"
        'MONGO_USER=mon\nMONGO_PASSWORD="x%y z"\nWORKERS=3\n'
    )
    assert _run(env, tmp_path / "k8s").returncode == 0
    base = tmp_path / "k8s" / "base" / "credentials"
    rabbit = urlsplit(_read(base / "broker.env")["RABBITMQ_URL"])
    assert (rabbit.hostname, rabbit.port, rabbit.path) == ("rabbitmq", 5672, "/%2F")
    assert unquote(rabbit.password or "") == "p@ss:w/rd#1"
    mongo = urlsplit(_read(base / "store.env")["MONGODB_URL"])
    assert (mongo.hostname, mongo.port, mongo.query) == ("mongodb", 27017, "authSource=admin")
    assert unquote(mongo.password or "") == "x%y z"
    assert _read(base / "rabbitmq.env")["RABBITMQ_DEFAULT_PASS"] == "p@ss:w/rd#1"
    assert _read(base / "mongodb.env")["MONGO_INITDB_ROOT_USERNAME"] == "mon"
    assert (base / "store.env").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("missing", ["RABBITMQ_PASSWORD", "MONGO_USER"])
def test_a_missing_value_is_refused_by_name(tmp_path: Path, missing: str) -> None:
    lines = ["RABBITMQ_USER=a", "RABBITMQ_PASSWORD=b", "MONGO_USER=c", "MONGO_PASSWORD=d"]
    env = tmp_path / ".env"
    env.write_text("\n".join(line for line in lines if not line.startswith(missing)) + "\n")
    result = _run(env, tmp_path / "k8s")
    assert result.returncode != 0
    assert missing in result.stderr
    assert not (tmp_path / "k8s").exists()


def test_no_env_file_says_what_to_do(tmp_path: Path) -> None:
    result = _run(tmp_path / ".env", tmp_path / "k8s")
    assert result.returncode == 2
    assert ".env.example" in result.stderr
