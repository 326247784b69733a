"""The compose stack's dashboard (the client image, `tunefleet dashboard`): reached from the
host on its published 127.0.0.1 port, it shows a study run by the stack's workers, and cancels
only with the token from `.env`."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from tunefleet.client import Client

from tests.containers.conftest import DASHBOARD, ComposeStack

SPEC = {
    "name": "compose-dashboard",
    "dataset": "iris",
    "cv": {"folds": 2, "seed": 1},
    "search": {
        "noop": {"grid": {"score": [0.2, 0.4, 0.6, 0.8]}},
        "xgboost": {
            "fixed": {"n_estimators": 4},
            "grid": {"max_depth": [2, 3], "learning_rate": [0.1, 0.3]},
        },
    },
}


def _request(
    stack: ComposeStack, path: str, *, method: str = "GET", token: str | None = None
) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{stack.env['DASHBOARD_PORT']}{path}"
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            kind = response.headers.get("content-type", "")
            return int(response.status), json.loads(body) if "json" in kind else body.decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"null")


def test_the_dashboard_serves_a_study_from_the_host_and_cancels_only_with_the_token(
    compose_stack: ComposeStack,
) -> None:
    compose_stack.wait_healthy()
    (container,) = compose_stack.containers(DASHBOARD)
    config = compose_stack.inspect(container)
    # Published on the host's loopback only; inside, bound to every address by its config.
    (binding,) = config["HostConfig"]["PortBindings"]["8765/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    assert binding["HostPort"] == compose_stack.env["DASHBOARD_PORT"]
    assert "TUNEFLEET_DASHBOARD_HOST=0.0.0.0" in config["Config"]["Env"]
    assert config["Config"]["User"] == "10001:10001"
    status, ready = _request(compose_stack, "/readyz")
    assert status == 200 and ready["ready"] is True

    client = Client(compose_stack.settings())
    study = str(client.submit(SPEC))
    done = client.wait(study, timeout_s=300)
    assert (done.n_trials, done.done) == (8, 8)

    status, listed = _request(compose_stack, "/api/studies")
    assert status == 200
    (row,) = [s for s in listed["studies"] if s["study_id"] == study]
    assert (row["done"], row["failed"]) == (8, 0)
    status, detail = _request(compose_stack, f"/api/studies/{study}")
    assert status == 200 and detail["progress"]["n_trials"] == 8
    assert detail["writable"] is True  # the stack's .env gives it a token
    status, table = _request(compose_stack, f"/api/studies/{study}/trials?library=xgboost")
    assert status == 200 and table["matched"] == 4
    # The study's figures, the contour among them (xgboost's two numeric parameters).
    status, figures = _request(compose_stack, f"/api/studies/{study}/figures")
    assert status == 200
    titles = [s["title"] for s in figures["sections"] if "title" in s]
    assert "xgboost: contour" in titles, titles
    status, page = _request(compose_stack, f"/studies/{study}")
    assert status == 200 and 'data-page="study"' in page

    # Cancel: refused without the token and with a wrong one, then done with it.
    path = f"/api/studies/{study}/cancel"
    assert _request(compose_stack, path, method="POST")[0] == 401
    assert _request(compose_stack, path, method="POST", token="not-the-token-at-all")[0] == 401
    assert client.study_record(study).cancelled_at is None
    token = compose_stack.env["TUNEFLEET_DASHBOARD_TOKEN"]
    status, cancelled = _request(compose_stack, path, method="POST", token=token)
    assert status == 200 and cancelled == {"study_id": study, "cancelled": True}
    deadline = time.monotonic() + 30
    while client.study_record(study).cancelled_at is None:
        assert time.monotonic() < deadline, "the collector never recorded the cancel"
        time.sleep(0.5)
