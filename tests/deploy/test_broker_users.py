"""The broker's users as the cluster's RabbitMQ gets them, on a real RabbitMQ node.

A node of our own starts as the manifests start theirs: the definitions Secret of the rendered
GKE overlay imported at boot (`load_definitions`, components/rabbitmq). Then each user does
what it is for, and a little of what it is not: the three services and the dashboard run from
their rendered Deployments with their own users (only the broker's address replaced), KEDA reads
the trials queue's length through the management API, and nobody but the administrator can do
more.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import pika.exceptions
import pytest
from tunefleet.client import Client
from tunefleet_contract.topology import Topology, declare, declare_watch_queue
from tunefleet_dev.devservices import LocalRabbitMQ, Services, ServiceUnavailableError, free_port
from tunefleet_runtime.settings import ClientSettings

from .conftest import ENV_FILE, SERVICES, container_env, data_of
from .test_entrypoints import SPEC, Pods, _ready, _until

pytestmark = pytest.mark.services

NAMESPACE = "tunefleet"  # what the definitions grant: the namespace of k8s/base/config/common.env


@dataclass
class Broker:
    amqp_port: int
    http_port: int

    def url(self, user: str, password: str) -> str:
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"amqp://{credentials}@127.0.0.1:{self.amqp_port}/%2F"

    def http(self, path: str, user: str, password: str) -> tuple[int, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status), json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return int(exc.code), None


@pytest.fixture(scope="module")
def broker(
    rendered: dict[str, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    root = tmp_path_factory.mktemp("rabbitmq-users")
    definitions = root / "definitions.json"
    definitions.write_text(
        data_of(rendered["gke"], "Secret", "rabbitmq-definitions")["definitions.json"]
    )
    node = LocalRabbitMQ(root / "node")
    http_port = free_port()
    # As the pod's conf.d does (components/rabbitmq/config/30-definitions.conf), plus the
    # management listener the pod has on its own address.
    conf = node.root / "rabbitmq.conf"
    conf.write_text(
        conf.read_text()
        + f"load_definitions = {definitions}\n"
        + f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {http_port}\n"
    )
    (node.root / "enabled_plugins").write_text("[rabbitmq_management].\n")
    try:
        node.start()
    except ServiceUnavailableError as exc:
        pytest.fail(f"no RabbitMQ node to import the definitions into: {exc}")
    try:
        yield Broker(node.port, http_port)
    finally:
        node.stop()


def _passwords(rendered: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[str, str]]:
    """Each user's name and password, from the rendered Secrets (the services' URLs, KEDA's)."""
    docs = rendered["gke-keda"]
    out = {}
    for service in (*SERVICES, "dashboard"):
        url = urlsplit(str(container_env(docs, service)["RABBITMQ_URL"]))
        out[service] = (url.username or "", url.password or "")
    keda = urlsplit(data_of(docs, "Secret", "keda-rabbitmq-management")["host"])
    out["keda"] = (keda.username or "", keda.password or "")
    env = dict(line.split("=", 1) for line in ENV_FILE.splitlines())
    out["admin"] = (env["RABBITMQ_USER"], env["RABBITMQ_PASSWORD"])
    return out


def _refused(connection: pika.BlockingConnection, action: Any) -> bool:
    """Whether the broker refuses `action(channel)` (403 ACCESS_REFUSED) on a new channel."""
    try:
        action(connection.channel())
    except pika.exceptions.ChannelClosedByBroker as exc:
        return exc.reply_code == 403
    return False


def test_the_administrator_is_the_one_of_env(
    broker: Broker, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    users = _passwords(rendered)
    status, listed = broker.http("/api/users", *users["admin"])
    assert status == 200
    assert {u["name"] for u in listed} == {
        users["admin"][0],
        *(f"tunefleet-{s}" for s in (*SERVICES, "dashboard", "keda")),
    }, "definitions imported at boot: no guest, no other default user"
    for service in (*SERVICES, "dashboard"):
        assert broker.http("/api/users", *users[service])[0] == 401, "no management tag"


def test_each_service_declares_the_topology_and_uses_only_its_own_queues(
    broker: Broker, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    users = _passwords(rendered)
    topology = Topology(NAMESPACE)
    consumes = {
        "publisher": [topology.studies_queue, topology.planner_queue],
        "worker": [topology.trials_queue, topology.control_queue],
        "collector": [topology.events_queue, topology.dead_letter_collector_queue],
    }
    for service in SERVICES:
        connection = pika.BlockingConnection(pika.URLParameters(broker.url(*users[service])))
        try:
            channel = connection.channel()
            declare(channel, topology)
            channel.basic_publish(topology.events_exchange, "study.nothing", b"{}")
            for queue in consumes[service]:
                arguments = {"x-stream-offset": "first"} if queue == topology.control_queue else {}
                channel.basic_qos(prefetch_count=1)
                tag = channel.basic_consume(queue, lambda *a: None, arguments=arguments)
                channel.basic_cancel(tag)
            # The dead letters kept for people; another installation's names.
            assert _refused(connection, lambda c: c.basic_get(topology.dead_letter_queue))
            assert _refused(connection, lambda c: c.queue_declare("other.trials"))
            assert _refused(connection, lambda c: c.exchange_declare("amq.tunefleet"))
        finally:
            if connection.is_open:
                connection.close()


def test_the_dashboard_watches_reads_dead_letters_and_publishes_cancels_only(
    broker: Broker, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    users = _passwords(rendered)
    topology = Topology(NAMESPACE)
    connection = pika.BlockingConnection(pika.URLParameters(broker.url(*users["dashboard"])))
    try:
        channel = connection.channel()
        declare(channel, topology)
        queue = declare_watch_queue(channel, topology)
        assert queue.startswith("amq.gen-")
        channel.basic_publish(topology.events_exchange, "study.nothing", b"{}")
        channel.basic_publish(topology.studies_exchange, "nothing.routed", b"{}")
        method, _properties, body = next(channel.consume(queue, inactivity_timeout=10))
        assert method is not None and body == b"{}", "its own queue gets the events"
        channel.cancel()
        channel.basic_get(topology.dead_letter_queue, auto_ack=False)  # listing: left in place
        # Not the pipeline's: the control stream, the collector's dead letters, other names.
        assert _refused(connection, lambda c: c.basic_get(topology.dead_letter_collector_queue))
        assert _refused(connection, lambda c: c.queue_declare("other.trials"))
        assert _refused(connection, lambda c: c.queue_declare(f"{NAMESPACE}.dashboard"))
    finally:
        if connection.is_open:
            connection.close()


def test_keda_reads_the_queue_length_and_nothing_else(
    broker: Broker, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    users = _passwords(rendered)
    topology = Topology(NAMESPACE)
    admin = pika.BlockingConnection(pika.URLParameters(broker.url(*users["admin"])))
    declare(admin.channel(), topology)
    admin.close()
    status, queue = broker.http(f"/api/queues/%2F/{quote(topology.trials_queue)}", *users["keda"])
    assert status == 200
    assert queue["name"] == topology.trials_queue
    assert broker.http("/api/users", *users["keda"])[0] in {401, 403}
    assert broker.http("/api/definitions", *users["keda"])[0] in {401, 403}
    connection = pika.BlockingConnection(pika.URLParameters(broker.url(*users["keda"])))
    try:
        assert _refused(connection, lambda c: c.basic_get(topology.trials_queue))
        assert _refused(connection, lambda c: c.queue_declare(f"{NAMESPACE}.keda"))
    finally:
        if connection.is_open:
            connection.close()


def test_the_services_run_a_study_each_as_its_own_user(
    broker: Broker,
    rendered: dict[str, list[dict[str, Any]]],
    services: Services,
    tmp_path: Path,
) -> None:
    """The pods' commands and environment (gke), their RABBITMQ_URLs pointed at this node with
    their own users: the permissions are enough to run a study."""
    users = _passwords(rendered)
    database = f"u{tmp_path.name[-8:].replace('-', '')}"
    pods = Pods(
        rendered["gke"],
        {
            "MONGODB_URL": services.mongodb_url,
            "MONGODB_DATABASE": database,
            "TUNEFLEET_DATA_ROOTS": str(tmp_path),
            "TUNEFLEET_NAMESPACE": NAMESPACE,
        },
        tmp_path,
    )
    own_urls = {}
    for service in SERVICES:
        url = urlsplit(str(container_env(rendered["gke"], service)["RABBITMQ_URL"]))
        assert (url.username, url.password) == users[service]
        own_urls[service] = urlunsplit(
            (
                url.scheme,
                f"{url.username}:{url.password}@127.0.0.1:{broker.amqp_port}",
                url.path,
                "",
                "",
            )
        )
    try:
        for service in ("collector", "publisher", "worker"):
            pods.local["RABBITMQ_URL"] = own_urls[service]
            _ready(pods.start(service))
        settings = ClientSettings(
            rabbitmq_url=broker.url(*users["admin"]),
            mongodb_url=services.mongodb_url,
            tunefleet_namespace=NAMESPACE,
            mongodb_database=database,
        )
        client = Client(settings)
        study = client.submit(SPEC)
        _until(lambda: len(client.trials(str(study))) == 2, "both trials to be stored")
        assert {t.status for t in client.trials(str(study))} == {"done"}
        # The dashboard, as its own user: follows the events, lists the study and its dead
        # letters, and cancels it with the token (the collector records the cancel).
        url = urlsplit(str(container_env(rendered["gke"], "dashboard")["RABBITMQ_URL"]))
        assert (url.username, url.password) == users["dashboard"]
        pods.local["RABBITMQ_URL"] = broker.url(*users["dashboard"])
        token = "a-token-of-the-secret-0123456789"
        dashboard = pods.start("dashboard", secrets={"TUNEFLEET_DASHBOARD_TOKEN": token})
        _ready(dashboard)
        _until(
            lambda: _json(dashboard.port, "/readyz")[1].get("events") is True,
            "the dashboard to follow the events with its own queue",
        )
        status, listed = _json(dashboard.port, "/api/studies")
        assert status == 200 and [s["study_id"] for s in listed["studies"]] == [str(study)]
        status, letters = _json(dashboard.port, f"/api/studies/{study}/dead-letters")
        assert status == 200 and letters["dead_letters"] == []
        refused = _post(dashboard.port, f"/api/studies/{study}/cancel", None)
        assert refused[0] == 401
        status, cancelled = _post(dashboard.port, f"/api/studies/{study}/cancel", token)
        assert status == 200 and cancelled["cancelled"] is True, cancelled
        _until(
            lambda: client.study_record(str(study)).cancelled_at is not None,
            "the collector to record the dashboard's cancel",
        )
    finally:
        pods.stop_all()


def _json(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"null")


def _post(port: int, path: str, token: str | None) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST", data=b"")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"null")
