"""Configuration contract: what each service reads is exactly what compose and k8s give it.

The names come from the pydantic settings classes (tunefleet_runtime.settings), so adding a setting
without providing it everywhere, or leaving a stale variable behind, fails here.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic_settings import BaseSettings
from tunefleet_runtime.settings import (
    ClientSettings,
    CollectorSettings,
    DashboardSettings,
    PublisherSettings,
    WorkerSettings,
)

from .conftest import OVERLAYS, ROOT, SERVICES, container_env, find, optional_env

READS: dict[str, type[BaseSettings]] = {
    "publisher": PublisherSettings,
    "worker": WorkerSettings,
    "collector": CollectorSettings,
}
# Values that come from the pod itself (downward API) rather than a ConfigMap or Secret.
FROM_POD = {"worker": {"TUNEFLEET_WORKER_NAME"}}


def env_names(cls: type[BaseSettings]) -> set[str]:
    names = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        names.add((alias or field.alias or name).upper())
    return names


def test_setting_names_are_derived_from_the_classes() -> None:
    worker = env_names(WorkerSettings)
    assert {"RABBITMQ_URL", "TUNEFLEET_GRACE_PERIOD_S", "TUNEFLEET_METRICS_PORT"} <= worker
    assert "MONGODB_URL" in worker  # optional: uploaded datasets and refits (blobs only)
    assert "MONGODB_URL" in env_names(CollectorSettings)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_k8s_provides_exactly_what_each_service_reads(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, service: str
) -> None:
    env = container_env(rendered[overlay], service)
    assert set(env) == env_names(READS[service]), (
        f"missing: {env_names(READS[service]) - set(env)}, "
        f"not read: {set(env) - env_names(READS[service])}"
    )
    from_pod = {name for name, value in env.items() if value is None}
    assert from_pod == FROM_POD.get(service, set())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_provides_exactly_what_the_dashboard_reads(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    # The token only where its optional Secret exists (none is rendered: read-only).
    optional = optional_env(docs, "dashboard")
    assert optional == {"TUNEFLEET_DASHBOARD_TOKEN"}
    provided = set(container_env(docs, "dashboard")) | optional
    assert provided == env_names(DashboardSettings), (
        f"missing: {env_names(DashboardSettings) - provided}, "
        f"not read: {provided - env_names(DashboardSettings)}"
    )


def test_every_tunefleet_configmap_and_secret_is_used(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["gke"]
    referenced = set()
    for service in (*SERVICES, "dashboard"):
        container = find(docs, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]
        for source in container.get("envFrom", []):
            referenced.add(next(iter(source.values()))["name"])
    ours = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] in {"ConfigMap", "Secret"} and d["metadata"]["name"].startswith("tunefleet-")
    }
    assert ours == referenced


def _compose_env(service: dict[str, Any]) -> set[str]:
    names = set(service.get("environment", {}))
    for path in service.get("env_file", []):
        for line in (ROOT / path).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                names.add(line.partition("=")[0].strip())
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_compose_provides_exactly_what_each_service_reads(
    compose: dict[str, Any], service: str
) -> None:
    provided = _compose_env(compose["services"][service])
    assert provided == env_names(READS[service]), (
        f"missing: {env_names(READS[service]) - provided}, "
        f"not read: {provided - env_names(READS[service])}"
    )


def test_compose_demo_client_gets_the_client_settings(compose: dict[str, Any]) -> None:
    assert _compose_env(compose["services"]["demo"]) == env_names(ClientSettings)


def test_compose_provides_exactly_what_the_dashboard_reads(compose: dict[str, Any]) -> None:
    assert _compose_env(compose["services"]["dashboard"]) == env_names(DashboardSettings)
    # An unset token in .env reaches it as "": read-only, not a refused start.
    settings = DashboardSettings(
        rabbitmq_url="amqp://u:p@h:1/", mongodb_url="mongodb://h:1", tunefleet_dashboard_token=""
    )
    assert settings.tunefleet_dashboard_token is None


def test_compose_and_k8s_share_the_config_files(compose: dict[str, Any]) -> None:
    kustomization = (ROOT / "k8s/base/kustomization.yaml").read_text()
    for service in (*SERVICES, "dashboard"):
        for path in compose["services"][service]["env_file"]:
            assert path.startswith("k8s/base/config/")
            assert path.removeprefix("k8s/base/") in kustomization


def _interpolate(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)(?::[?-][^}]*)?\}", lambda m: values[m.group(1)], text)


def test_urls_point_at_the_broker_and_database_in_both(
    rendered: dict[str, list[dict[str, Any]]], compose: dict[str, Any]
) -> None:
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    docs = rendered["gke"]
    env = container_env(docs, "collector")
    compose_env = compose["services"]["collector"]["environment"]
    for variable, service in (("RABBITMQ_URL", "rabbitmq"), ("MONGODB_URL", "mongodb")):
        k8s_url = urlsplit(str(env[variable]))
        compose_url = urlsplit(_interpolate(compose_env[variable], example))
        assert k8s_url.hostname == compose_url.hostname == service
        assert k8s_url.port == compose_url.port
        # In the cluster each service logs in as itself (deploy/credentials.py); compose's
        # services still share the administrator of .env.
        assert k8s_url.username == "tunefleet-collector"
        assert k8s_url.path == compose_url.path and k8s_url.query == compose_url.query
        ports = {p["port"] for p in find(docs, "Service", service)["spec"]["ports"]}
        assert k8s_url.port in ports
        assert service in compose["services"]
