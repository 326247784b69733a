"""The suite's own broker and store where a Docker daemon answers: containers of the images
that can be had (here, the stand-ins), local processes for those that cannot."""

from __future__ import annotations

from pathlib import Path

import pika
import pytest
from pymongo import MongoClient
from tunefleet_dev import images
from tunefleet_dev.devservices import LocalMongo, LocalRabbitMQ, Services, start_services

from tests.containers.conftest import docker

pytestmark = pytest.mark.usefixtures("docker_daemon")


def _round_trip(services: Services) -> None:
    """A message through the broker and a document through the store."""
    connection = pika.BlockingConnection(pika.URLParameters(services.rabbitmq_url))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"hello")
    method, _, body = channel.basic_get(queue, auto_ack=True)
    connection.close()
    assert method is not None and body == b"hello"
    with MongoClient(services.mongodb_url, serverSelectionTimeoutMS=5000) as client:
        client.probe.docs.insert_one({"_id": 1, "ok": True})
        assert client.probe.docs.find_one({"_id": 1}) == {"_id": 1, "ok": True}


@pytest.fixture
def no_urls(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("RABBITMQ_URL", raising=False)
    monkeypatch.delenv("MONGODB_URL", raising=False)
    return monkeypatch


def test_images_that_can_be_had_run_as_containers(
    no_urls: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in ("RABBITMQ_IMAGE", "MONGO_IMAGE"):
        images.ensure_standin(variable, images.Docker())
        no_urls.setenv(variable, images.standins()[variable].tag)
    services = start_services(tmp_path)
    try:
        assert services.rabbitmq is None and services.mongo is None  # no local process
        for variable, name in (("RABBITMQ_IMAGE", "rabbitmq"), ("MONGO_IMAGE", "mongodb")):
            assert f"{name}: container {images.standins()[variable].tag}" in services.origin
        _round_trip(services)
    finally:
        services.stop()
    assert len(services.containers) == 2
    for container in services.containers:  # removed, not left behind
        assert docker("ps", "-aq", "--no-trunc", "--filter", f"id={container}").strip() == ""


def test_an_image_that_cannot_be_had_falls_back_to_a_local_process(
    no_urls: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_urls.setenv("RABBITMQ_IMAGE", "tunefleet-local/never-built:0")
    no_urls.setenv("MONGO_IMAGE", "tunefleet-local/never-built:0")
    services = start_services(tmp_path)
    try:
        assert isinstance(services.rabbitmq, LocalRabbitMQ)
        assert isinstance(services.mongo, LocalMongo)
        assert "rabbitmq: tunefleet-local/never-built:0 cannot be pulled" in services.origin
        assert "rabbitmq: local rabbitmq-server" in services.origin
        _round_trip(services)
    finally:
        services.stop()
