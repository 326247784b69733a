"""`tunefleet dashboard` in headless Chromium, on a real broker, store and pipeline: a study
submitted while the page is open appears and fills in without a reload, the trial table's
filters narrow it on the server, and cancel is refused without the token and works with it.

Screenshots of each page go to the test's tmp_path, or to $TUNEFLEET_SCREENSHOTS (docs/ keeps
the ones docs/usage.md shows: `TUNEFLEET_SCREENSHOTS=docs pytest tests/e2e/test_dashboard.py`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from tunefleet.client import Client
from tunefleet_dev.devservices import Pipeline, Services, free_port
from tunefleet_runtime.settings import ClientSettings

from tests.support.chromium import Browser, chromium_binary

# A browser of the host's (Chromium), which the tests container does not have.
pytestmark = pytest.mark.host

TOKEN = "e2e-dashboard-token-0123456789"

# Ten short trials, every other one failing, slow enough (one worker) to watch them come in.
SPEC: dict[str, Any] = {
    "name": "dashboard-e2e",
    "dataset": "iris",
    "cv": {"folds": 2, "seed": 1},
    "search": {
        "noop": {
            "fixed": {"sleep_s": 0.7},
            "grid": {"score": [0.2, 0.4, 0.6, 0.8, 0.9], "fail": [False, True]},
        }
    },
}


SECOND: dict[str, Any] = {
    "name": "dashboard-second",
    "dataset": "iris",
    "cv": {"folds": 2, "seed": 1},
    "search": {"noop": {"grid": {"score": [0.3, 0.5, 0.7, 0.95]}}},
}


@pytest.fixture
def chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        pytest.fail("chromium is not installed (apt-get install chromium; make test-tools)")
    return binary


@pytest.fixture
def dashboard(services: Services, isolation: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`tunefleet dashboard` as a user starts it (the CLI, settings from the environment)."""
    port = free_port()
    env = {
        **os.environ,
        **services.env(),
        **isolation,
        "TUNEFLEET_DASHBOARD_TOKEN": TOKEN,
        "TUNEFLEET_DASHBOARD_PORT": str(port),
    }
    log = (tmp_path / "dashboard.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("tunefleet")), "dashboard"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dashboard exited: {(tmp_path / 'dashboard.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/api/studies", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the dashboard did not answer within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_for(browser: Browser, expression: str, what: str, timeout_s: float = 60) -> Any:
    """Poll a JavaScript expression in the page until it is truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = browser.evaluate(expression)
        if value:
            return value
        time.sleep(0.1)
    state = browser.evaluate("JSON.stringify(window.tf)")
    raise AssertionError(f"timed out waiting for {what}; page state: {state}")


def until(check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def screenshots() -> Path | None:
    folder = os.environ.get("TUNEFLEET_SCREENSHOTS")
    return Path(folder) if folder else None


def test_dashboard_follows_a_study_live_filters_and_cancels(
    pipeline: Pipeline,
    settings: ClientSettings,
    dashboard: str,
    chromium: str,
    tmp_path: Path,
) -> None:
    pipeline.start_all(workers=1)
    client = Client(settings)
    shots = screenshots() or tmp_path
    db = MongoClient(str(settings.mongodb_url))[settings.mongodb_database]

    with Browser(chromium) as browser:
        browser.open(f"{dashboard}/")
        wait_for(browser, "document.getElementById('live').textContent === 'live'", "SSE")
        browser.evaluate("window.notReloaded = true")

        study = client.submit(SPEC)
        study_id = str(study)
        # The studies page shows it without a reload, and its progress as results come in.
        wait_for(browser, f"!!document.querySelector('tr[data-study-id=\"{study_id}\"]')", "row")
        assert browser.evaluate("window.notReloaded") is True

        # The study's page, while the study runs: cancel without the token is refused.
        browser.open(f"{dashboard}/studies/{study_id}")
        wait_for(browser, "document.getElementById('live').textContent === 'live'", "SSE")
        browser.evaluate("window.notReloaded = true")
        browser.evaluate("document.getElementById('cancel').click()")
        refused = wait_for(
            browser, "document.getElementById('action-result').dataset.status", "refusal"
        )
        assert refused == "401"
        assert client.study_record(study_id).cancelled_at is None

        # It fills in live: several draws, each with more results, no reload.
        wait_for(
            browser,
            "(() => { const p = document.getElementById('progress').dataset;"
            " return +p.done + +p.failed >= 5 && +p.done >= 1 && +p.failed >= 1; })()",
            "five results on the page",
        )
        updates = browser.evaluate("window.tf.updates")
        assert len(updates) >= 2, updates  # it grew on the open page: not all at once
        assert browser.evaluate("window.notReloaded") is True
        # The report's per-library figures, drawn from the same code, once there are results.
        wait_for(
            browser, "document.querySelectorAll('#figures .js-plotly-plot').length >= 2", "plots"
        )
        browser.screenshot(shots / "dashboard-study.png")

        # Cancel with the token: the page says so, and the store has it.
        browser.evaluate(
            f"document.getElementById('token').value = {json.dumps(TOKEN)};"
            "document.getElementById('action-result').dataset.status = '';"
            "document.getElementById('cancel').click()"
        )
        done = wait_for(
            browser, "document.getElementById('action-result').dataset.status", "cancel", 60
        )
        assert done == "200", browser.evaluate(
            "document.getElementById('action-result').textContent"
        )
        assert client.study_record(study_id).cancelled_at is not None
        wait_for(browser, "document.getElementById('state').dataset.state === 'cancelled'", "state")

        # The table's filter narrows it, on the server: the failed ones only (as the store
        # has them; the trial a worker had in hand when it was cancelled may still land).
        def failed_in_store() -> int:
            return db.trials.count_documents({"study_id": study_id, "status": "failed"})

        browser.evaluate(
            "{ const s = document.querySelector('#filter [name=status]'); s.value = 'failed';"
            "s.dispatchEvent(new Event('input', {bubbles: true})) }"
        )

        def narrowed() -> bool:
            shown = browser.evaluate(
                "[document.getElementById('trials-count').dataset.matched,"
                " [...document.querySelectorAll('#trials tbody tr')].map(r => r.className)]"
            )
            return shown[0] == str(failed_in_store()) and set(shown[1]) == {"failed"}

        until(narrowed, "the failed trials only")
        total = int(browser.evaluate("document.getElementById('trials-count').dataset.total"))
        assert 0 < failed_in_store() < total

        one = db.trials.find_one({"study_id": study_id, "status": "done"})
        assert one is not None
        browser.evaluate(
            "{ document.querySelector('#filter [name=status]').value = '';"
            "const q = document.querySelector('#filter [name=q]');"
            f"q.value = {json.dumps(one['_id'][:10])};"
            "q.dispatchEvent(new Event('input', {bubbles: true})) }"
        )
        wait_for(
            browser,
            "document.getElementById('trials-count').dataset.matched === '1' && "
            f"!!document.querySelector('#trials tr[data-trial-id=\"{one['_id']}\"]')",
            "one trial by its id",
        )

        # Two studies side by side: a second, short one against the first.
        second = client.submit(SECOND)
        second.wait(progress=False, timeout_s=120)
        browser.open(f"{dashboard}/compare?a={study_id}&b={second}")
        wait_for(browser, "window.tf.draws > 0", "the comparison")
        names = browser.evaluate("[...document.querySelectorAll('#sides tr')][0].textContent")
        assert "dashboard-e2e" in names and "dashboard-second" in names
        assert browser.evaluate("document.getElementById('best').data.length") == 2
        browser.screenshot(shots / "dashboard-compare.png")

        # How long from a result's storing to the page showing it (reported, not asserted).
        stored = sorted(
            d["stored_at"]
            for d in db.trials.find({"study_id": study_id, "status": "done"}, {"stored_at": 1})
        )
        lags = [
            u["at"] / 1000 - stored[u["done"] - 1] for u in updates if 0 < u["done"] <= len(stored)
        ]
        (tmp_path / "lags.json").write_text(json.dumps(lags))
        print(f"stored -> page, seconds: {', '.join(f'{lag:.3f}' for lag in lags)}")

        # The other pages render with no script error and nothing fetched from outside.
        browser.open(f"{dashboard}/trials/{one['_id']}")
        wait_for(browser, "window.tf.draws > 0", "the trial page")
        assert browser.evaluate("document.getElementById('status').textContent") == "done"
        assert "fold 2" in browser.evaluate("document.getElementById('trial').textContent")
        browser.screenshot(shots / "dashboard-trial.png")
        browser.open(f"{dashboard}/fleet")
        wait_for(browser, "window.tf.draws > 0", "the fleet page")
        workers = browser.evaluate(
            "[...document.querySelectorAll('#workers tr[data-worker]')].map(r => r.dataset.worker)"
        )
        assert workers == ["worker-1"]
        browser.screenshot(shots / "dashboard-fleet.png")
        browser.open(f"{dashboard}/")
        wait_for(browser, "window.tf.draws > 0", "the studies page")
        browser.screenshot(shots / "dashboard-studies.png")
        errors = list(browser.errors)
        outside = [u for u in browser.requests if not u.startswith((dashboard, "data:", "blob:"))]

    # The one error a page logged is the refused cancel's answer.
    assert errors == [
        "log: Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ], errors
    assert outside == []
