"""The dashboard at 100,000 trials, side by side with optuna-dashboard on an Optuna study of the
same size, both on this machine:

    uv run --group peers python -m bench.dashboard [--trials 100000] [--reps 3]
        [--optuna-storage journal|sqlite]

- **first paint**: headless Chromium opens the study's page; the time from navigation to the
  page having drawn the study (tunefleet: progress, best-so-far, leaderboard and the first page
  of the trial table; optuna-dashboard: its history plot drawn, the page's main view). The
  tunefleet server is started just before its first load, which it serves once it has read the
  study whole (it reads the recent studies at start): that load is reported apart, as the cold
  paint, and the `--reps` loads after it from what the server keeps;
- **stored -> page** (tunefleet only: optuna-dashboard polls every 10 s, by its design): in each
  of those loads one more result published on the events exchange as a worker does and written
  to the store as the collector does, while the page is open, until the page shows it;
- **server memory**: the server's resident memory after the page loads.

The tunefleet study is written through the store's own write path (`Store.write_events`, what
the collector calls), one start and one result per trial, as a 100,000-trial load test leaves
it. The Optuna study has the same trials, written with `study.add_trials` into a journal file
(`JournalFileBackend`; `--optuna-storage sqlite`: SQLite, about 5 ms a trial), on a tmpfs;
optuna-dashboard opens either.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunefleet.client import Client
from tunefleet_contract.messages import StudyRegistered, TrialResult, TrialsStarted
from tunefleet_dev.devservices import free_port
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.validation import parse_spec

from bench.common import peak_rss_mb, rss_mb, services_up, table, write_section
from tests.support.chromium import Browser, chromium_binary

SPACE = {
    "score": {"uniform": [0.5, 1.0]},
    "x": {"loguniform": [0.001, 10.0]},
    "sleep_s": {"uniform": [0.0, 1.0]},
}


# Where the time goes at 100,000 results on this machine's store, kept with the figures.
AT_100K = """\
**Where the time goes.** The store here is FerretDB v1.24.2 on SQLite. Raw pymongo reads of a
100,000-result study on it (2026-12-08, a loaded machine): counting the study's results 18.0 s;
reading them all without a sort 14.4 to 16.4 s (11.6 s with a projection of four fields);
reading only those stored after a moment (5,000 of them) 12.9 s, the same scan; a sort by score
with a limit of 10, 31.0 s; `_id` in 1,000 ids 22.2 s; at 10,000 results each is about a tenth
of that (0.8 to 2.2 s). A lookup by `_id` alone is handed to SQLite, which still reads the
table row by row: 3 ms for a trial stored early, 0.3 s for the newest of 20,000, 1.2 to 1.8 s
for the newest of 100,000. The first dashboard re-read the whole study, sorted by score, on
every change, and at 100,000 never answered. Now it reads a study whole once, without a sort
(the cold paint: that read, and the starts', then the page), keeps it, and follows it by what
changed: a result its worker publishes on the events stream is taken from the event itself as
the store will keep it (the collector stores the same message; a lookup by id cost 1.2 to 1.8
s per result here, and a run that looked each one up measured 3.1 s from stored to page), and
the catch-up for what crosses no exchange reads what was stored since the latest result seen,
in a thread, at most once per 20 times its own duration. The pages' views (progress,
best-so-far, leaderboard, failures, the table's first view) are kept in order as results come:
the study's JSON is served in 17 ms and the table's first page in 4 to 8 ms once kept (20,000
trials, measured apart). On MongoDB 7 `results_since` reads the `revision_stored` index; no
MongoDB server can be installed on this machine to measure that.

**The warm first paint is the browser's, and most of it is plotly.js.** In the same headless
Chromium, with a 2,000-trial study, plotly.js (4.6 MB, loaded beside the page's data rather
than before it) was ready 1.03 to 1.36 s after navigation began and the page drawn 0.1 to 0.2
s later; the page's own requests had all answered by 0.55 s (with 20,000 trials). So the first
paint is not under a second here, at any size: a smaller plotly.js build for the study page's
first chart is what would bring it there, and is not built. optuna-dashboard's first paint is
bound by its server's read of the study on every load."""


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(url)


@contextmanager
def _server(command: list[str], env: dict[str, str], ready: str) -> Iterator[int]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_http(ready, proc)
            yield proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _poll(browser: Browser, expression: str, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = browser.evaluate(expression)
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(expression)


def _result(study_id: str, i: int, rng: random.Random, now: float) -> TrialResult:
    params = {"score": rng.uniform(0.5, 1.0), "x": rng.uniform(0.001, 10), "sleep_s": i % 11 / 10}
    return TrialResult(
        study_id=study_id,
        trial_id=f"{i:024x}",
        library="noop",
        params=params,
        status="done",
        metric="accuracy",
        score=params["score"],
        fold_scores=[params["score"]] * 3,
        worker=f"worker-{i % 40}",
        finished_at=now - 3600 + i * 0.03,
    )


def write_tunefleet_study(client: Client, n: int, extra: int = 1) -> str:
    """A study of n + extra trials with n results stored (the others come while a page is
    open, one per page load)."""
    spec = parse_spec(
        {
            "name": "bench-dashboard",
            "dataset": "iris",
            "metric": "accuracy",
            "search": {"noop": {"random": {"n_trials": n + extra, "seed": 0, "space": SPACE}}},
            "allow_large": n + extra > 100_000,
        }
    )
    study_id = spec.study_id()
    now = time.time()
    client.store.write_events(
        [
            StudyRegistered(
                study_id=study_id, spec=spec, n_trials=n + extra, submitted_at=now, published_at=now
            )
        ]
    )
    rng = random.Random(0)
    batch = 5000
    for first in range(0, n, batch):
        ids = [f"{i:024x}" for i in range(first, min(n, first + batch))]
        started = TrialsStarted(
            study_id=study_id, trial_ids=ids, worker="worker-0", attempt=1, started_at=now - 3600
        )
        results = [_result(study_id, i, rng, now) for i in range(first, first + len(ids))]
        client.store.write_events([started, *results])
    return study_id


def measure_tunefleet(settings: ClientSettings, study_id: str, n: int, reps: int) -> dict[str, Any]:
    client = Client(settings)
    env = {
        **os.environ,
        "RABBITMQ_URL": str(settings.rabbitmq_url),
        "MONGODB_URL": str(settings.mongodb_url),
        "MONGODB_DATABASE": settings.mongodb_database,
        "TUNEFLEET_DASHBOARD_PORT": str(port := free_port()),
    }
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("tunefleet")), "dashboard"]
    paints: list[float] = []
    lags: list[float] = []
    with _server(command, env, f"{url}/static/dashboard.css") as pid:
        binary = chromium_binary()
        assert binary is not None, "chromium is not installed"
        # The first load meets a server that has just started and is still reading the study
        # whole (it reads the recent studies at start): reported apart, as the cold paint.
        for rep in range(reps + 1):
            with Browser(binary, timeout_s=900) as browser:
                browser.open(f"{url}/studies/{study_id}")
                paints.append(_poll(browser, "window.tf.firstDraw", 900) / 1000)
                if rep == 0:
                    continue
                _poll(browser, "document.getElementById('live').textContent === 'live'")
                # As the pipeline does it: the worker's event, then the collector's write.
                i = n + rep - 1
                last = _result(study_id, i, random.Random(rep), time.time())
                client.publish(lambda t: t.events_exchange, last.kind, last.encode())
                client.store.write_events([last])
                _poll(browser, f"window.tf.updates.some(u => u.done === {i + 1})", 900)
                shown = browser.evaluate(f"window.tf.updates.find(u => u.done === {i + 1}).at")
                stored = _stored_at(settings, study_id, f"{i:024x}")
                lags.append(shown / 1000 - stored)
        memory = rss_mb(pid)
        peak = peak_rss_mb(pid)
    return {
        "cold_paint_s": paints[:1],
        "paint_s": paints[1:],
        "lag_s": lags,
        "rss_mb": memory,
        "peak_rss_mb": peak,
    }


def _stored_at(settings: ClientSettings, study_id: str, trial_id: str) -> float:
    from pymongo import MongoClient

    mongo: MongoClient[dict[str, Any]]
    with MongoClient(str(settings.mongodb_url)) as mongo:
        doc = mongo[settings.mongodb_database].trials.find_one({"_id": trial_id})
        assert doc is not None and doc["study_id"] == study_id
        return float(doc["stored_at"])


def write_optuna_study(path: Path, n: int, journal: bool) -> str:
    """The same trials as an Optuna study, in SQLite or in a journal file (both storages that
    optuna-dashboard opens; the journal writes 100,000 trials in seconds, SQLite in ~8 min)."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = str(path) if journal else f"sqlite:///{path}"
    storage = JournalStorage(JournalFileBackend(url)) if journal else url
    study = optuna.create_study(study_name="bench-dashboard", storage=storage, direction="maximize")
    rng = random.Random(0)
    dists = {
        "score": FloatDistribution(0.5, 1.0),
        "x": FloatDistribution(0.001, 10.0, log=True),
        "sleep_s": FloatDistribution(0.0, 1.0),
    }
    batch = 5000
    for first in range(0, n, batch):
        trials = []
        for i in range(first, min(n, first + batch)):
            params = {
                "score": rng.uniform(0.5, 1.0),
                "x": rng.uniform(0.001, 10),
                "sleep_s": i % 11 / 10,
            }
            trials.append(
                optuna.trial.create_trial(params=params, distributions=dists, value=params["score"])
            )
        study.add_trials(trials)
    return url


def measure_optuna(storage: str, reps: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).with_name("optuna-dashboard")),
        storage,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    paints: list[float] = []
    with _server(command, dict(os.environ), f"{url}/") as pid:
        binary = chromium_binary()
        assert binary is not None
        # Its id for the study: 1 in SQLite, 0 in a journal.
        with urllib.request.urlopen(f"{url}/api/studies", timeout=600) as answer:
            study = json.load(answer)["study_summaries"][0]["study_id"]
        for _rep in range(reps):
            with Browser(binary, timeout_s=900) as browser:
                started = time.monotonic()
                browser.open(f"{url}/dashboard/studies/{study}")
                # Its history plot drawn: plotly's points in the page.
                _poll(browser, "document.querySelectorAll('.scatterlayer .point').length > 0", 900)
                paints.append(time.monotonic() - started)
        memory = rss_mb(pid)
        peak = peak_rss_mb(pid)
    return {"paint_s": paints, "rss_mb": memory, "peak_rss_mb": peak}


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
        if len(values) > 1
        else f"{values[0]:.2f}"
    )


def _timed(what: str, fn: Callable[[], Any]) -> Any:
    started = time.monotonic()
    value = fn()
    print(f"{what}: {time.monotonic() - started:.1f} s", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-optuna", action="store_true")
    parser.add_argument(
        "--optuna-storage",
        choices=("journal", "sqlite"),
        default="journal",
        help="where the Optuna study is written for optuna-dashboard (default: journal)",
    )
    parser.add_argument(
        "--optuna-json",
        type=Path,
        help="optuna-dashboard's figures from an earlier run of this benchmark at the same size "
        "(the JSON line it printed), instead of measuring them again",
    )
    args = parser.parse_args()
    n = args.trials
    with services_up() as services:
        settings = ClientSettings(
            rabbitmq_url=services.rabbitmq_url,
            mongodb_url=services.mongodb_url,
            mongodb_database="benchdash",
        )
        client = Client(settings)
        study_id = _timed(
            "write the tunefleet study", lambda: write_tunefleet_study(client, n, args.reps)
        )
        ours = _timed("tunefleet", lambda: measure_tunefleet(settings, study_id, n, args.reps))
    print(json.dumps(ours), flush=True)
    theirs: dict[str, Any] | None = None
    if args.optuna_json is not None:
        theirs = json.loads(args.optuna_json.read_text())
    elif not args.skip_optuna:
        # In memory where there is a tmpfs: SQLite's fsync per trial is not what is measured.
        shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
        with tempfile.TemporaryDirectory(prefix="bench-optuna-dash-", dir=shm) as tmp:
            storage = _timed(
                "write the Optuna study",
                lambda: write_optuna_study(
                    Path(tmp) / "o.db", n, journal=args.optuna_storage == "journal"
                ),
            )
            theirs = _timed("optuna-dashboard", lambda: measure_optuna(storage, args.reps))
        print(json.dumps(theirs), flush=True)
    rows = [
        [
            "first paint of the study's page, s",
            _spread(ours["paint_s"]),
            _spread(theirs["paint_s"]) if theirs else "not run",
        ],
        [
            "first paint, server just started (reads the study whole), s",
            _spread(ours["cold_paint_s"]),
            "(every load reads it)",
        ],
        [
            "stored result -> on the page, s",
            _spread(ours["lag_s"]),
            "polls every 10 s",
        ],
        [
            "server resident memory after the page loads, MB",
            f"{ours['rss_mb']:.0f}",
            f"{theirs['rss_mb']:.0f}" if theirs else "not run",
        ],
        [
            "server peak resident memory, MB",
            f"{ours['peak_rss_mb']:.0f}",
            f"{theirs['peak_rss_mb']:.0f}" if theirs else "not run",
        ],
    ]
    body = (
        f"A study of {n:,} trials with a result, opened in headless Chromium "
        f"({args.reps} page loads each; median (min-max)).\n\n"
        + table(["", "tunefleet dashboard", "optuna-dashboard"], rows)
        + "\n\n"
        + (__doc__ or "").split("\n\n", 1)[1].strip()
        + "\n\n"
        + AT_100K
    )
    write_section(
        # Each size its own section: the 10,000-trial run stands beside the 100,000-trial one.
        "dashboard" if n == 10_000 else f"dashboard-{n}",
        f"The dashboard at {n:,} trials, against optuna-dashboard",
        body,
        command=(
            f"uv run --group peers python -m bench.dashboard --trials {n} --reps {args.reps}"
            f" --optuna-storage {args.optuna_storage}"
            + (f" --optuna-json {args.optuna_json.name}" if args.optuna_json else "")
        ),
    )


if __name__ == "__main__":
    main()
