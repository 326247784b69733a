"""Which base image each variable gets (tunefleet_dev.images.resolve), against a fake docker."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from tunefleet_dev import images
from tunefleet_dev.installs import ToolError


class FakeDocker(images.Docker):
    """Images here, images a registry has; records the pulls asked for."""

    def __init__(self, here: set[str], pullable: set[str]) -> None:
        super().__init__("docker")
        self.here, self.pullable = here, pullable
        self.pulled: list[str] = []

    def label(self, image: str) -> str | None:
        return "" if image in self.here else None

    def pull(self, image: str) -> str | None:
        self.pulled.append(image)
        return None if image in self.pullable else "no such host"


DEFAULTS = images.official_defaults()


def test_the_official_image_here_is_taken_without_a_pull() -> None:
    docker = FakeDocker(here={DEFAULTS["PYTHON_IMAGE"]}, pullable=set())
    chosen = images.resolve(("PYTHON_IMAGE",), docker, env={})
    assert chosen.images == {"PYTHON_IMAGE": DEFAULTS["PYTHON_IMAGE"]}
    assert chosen.reasons["PYTHON_IMAGE"] == "official, here" and docker.pulled == []


def test_an_official_image_that_can_be_pulled_is_pulled() -> None:
    docker = FakeDocker(here=set(), pullable={DEFAULTS["MONGO_IMAGE"]})
    chosen = images.resolve(("MONGO_IMAGE",), docker, env={})
    assert chosen.images == {"MONGO_IMAGE": DEFAULTS["MONGO_IMAGE"]}
    assert chosen.reasons["MONGO_IMAGE"] == "official, pulled"


def test_a_variable_that_is_set_wins_over_the_official_image() -> None:
    docker = FakeDocker(here={"mine/rabbit:1", DEFAULTS["RABBITMQ_IMAGE"]}, pullable=set())
    chosen = images.resolve(("RABBITMQ_IMAGE",), docker, env={"RABBITMQ_IMAGE": "mine/rabbit:1"})
    assert chosen.images == {"RABBITMQ_IMAGE": "mine/rabbit:1"}


def test_a_variable_naming_an_image_that_cannot_be_had_is_refused_with_what_to_do() -> None:
    docker = FakeDocker(here=set(), pullable=set())
    with pytest.raises(
        ToolError,
        match=r"UV_IMAGE=nowhere:1 is neither here nor can it be "
        r"pulled \(no such host\): unset UV_IMAGE to use the default",
    ):
        images.resolve(("UV_IMAGE",), docker, env={"UV_IMAGE": "nowhere:1"})


def test_build_args_name_the_two_bases_and_the_ca_only_where_one_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chosen = images.Resolution({"PYTHON_IMAGE": "p:1", "UV_IMAGE": "u:1", "MONGO_IMAGE": "m:1"})
    for variable in ("TUNEFLEET_BUILD_CA", "SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    assert images.build_args(chosen) == [
        "--build-arg",
        "PYTHON_IMAGE=p:1",
        "--build-arg",
        "UV_IMAGE=u:1",
    ]
    monkeypatch.setenv("PIP_CERT", "/nonexistent/ca.pem")  # names no file: not passed
    assert "--secret" not in images.build_args(chosen)
    monkeypatch.setenv("SSL_CERT_FILE", __file__)
    assert images.build_args(chosen)[-2:] == ["--secret", f"id=ca,src={__file__}"]


def test_each_stand_in_names_the_version_it_stands_for() -> None:
    standins = images.standins()
    assert (
        standins["UV_IMAGE"].tag == f"tunefleet-local/uv:{DEFAULTS['UV_IMAGE'].rpartition(':')[2]}"
    )
    assert standins["MONGO_IMAGE"].args["MONGOSH_VERSION"] == images.MONGOSH_VERSION
    for standin in standins.values():
        assert (images.RECIPES / standin.recipe).is_file()


class ListingDocker(images.Docker):
    """`docker image ls` answered from a list; the commands asked for, recorded."""

    def __init__(self, tags: list[str]) -> None:
        super().__init__("docker")
        self.tags = tags
        self.commands: list[tuple[str, ...]] = []

    def run(self, *args: str, timeout: float | None = None, env: object = None) -> Any:
        self.commands.append(args)
        return subprocess.CompletedProcess(args, 0, "\n".join(self.tags), "")


def test_the_images_tilt_built_are_removed_and_nothing_else() -> None:
    docker = ListingDocker(
        [
            "tunefleet-worker:tilt-c72412cff664a72b",
            "tunefleet-worker-base:tilt-b715a218a869a3aa",
            "tunefleet-worker:0.1.0",  # compose's
            "tunefleet-local/kind-node:v1.31.14",  # a cached build
            "someone-else:tilt-1",
        ]
    )
    assert docker.remove_tagged("tunefleet-", "tilt-") == 2
    assert docker.commands[-1] == (
        "image",
        "rm",
        "--force",
        "tunefleet-worker:tilt-c72412cff664a72b",
        "tunefleet-worker-base:tilt-b715a218a869a3aa",
    )
    docker.prune_dangling()  # only the untagged images of this project's recipes
    assert docker.commands[-1] == (
        "image",
        "prune",
        "--force",
        "--filter",
        "label=io.tunefleet.recipe",
    )
