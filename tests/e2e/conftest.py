"""Fixtures for end-to-end tests that drive tunefleet as a user does (CLI, notebook)."""

from __future__ import annotations

import pytest
from tunefleet_dev.devservices import Services


@pytest.fixture
def service_env(
    services: Services, isolation: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment a user's shell or Jupyter kernel would have: service URLs plus the
    test's own namespace and database. Set on this process, so subprocesses inherit it."""
    env = {**services.env(), **isolation}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
