"""What `make up` refuses before anything starts: a `.env` compose would fail on half-way."""

from __future__ import annotations

from pathlib import Path

import pytest
from tunefleet_dev.stack import Stack, StackError, read_env_file

GOOD = (
    "RABBITMQ_USER=tunefleet\nRABBITMQ_PASSWORD=abc123\nMONGO_USER=tunefleet\nMONGO_PASSWORD=x9\n"
)


def test_a_missing_env_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"no stack\.env: `cp \.env\.example \.env`"):
        Stack(env_file=tmp_path / "stack.env").check_env_file()


def test_a_missing_credential_is_named(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(GOOD.replace("MONGO_PASSWORD=x9\n", "MONGO_PASSWORD=\n"))
    with pytest.raises(StackError, match=r"does not set MONGO_PASSWORD: set them there"):
        Stack(env_file=env).check_env_file()


def test_a_password_compose_cannot_put_into_a_url_is_refused(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(GOOD.replace("abc123", "p@ss/word"))
    with pytest.raises(StackError, match=r"RABBITMQ_PASSWORD .* letters and digits"):
        Stack(env_file=env).check_env_file()


def test_a_complete_env_file_is_read_as_compose_reads_it(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\n\n" + GOOD + "RABBITMQ_PORT='5673'\n")
    assert Stack(env_file=env).check_env_file()["MONGO_PASSWORD"] == "x9"
    assert read_env_file(env)["RABBITMQ_PORT"] == "5673"
    assert Stack(env_file=env).port_values()["RABBITMQ_PORT"] == 5673


def test_a_port_that_is_not_a_number_is_named(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(GOOD + "MONGO_PORT=mongo\n")
    with pytest.raises(StackError, match=r"MONGO_PORT='mongo' is not a port number"):
        Stack(env_file=env).port_values()


def test_a_build_without_env_file_reads_the_examples_placeholders(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text(GOOD)
    stack = Stack(root=tmp_path, for_build=True)
    assert stack.dotenv == tmp_path / ".env.example"
    assert Stack(root=tmp_path).dotenv == tmp_path / ".env"
