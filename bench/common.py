"""What every benchmark shares: services, a pipeline per run, process measurements, the report.

Each benchmark writes one section of docs/benchmarks.md between markers, so running one
benchmark updates its table and leaves the others as they were.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil
from tunefleet.client import Client
from tunefleet_dev.devservices import Pipeline, Services, running
from tunefleet_runtime.broker import connect, topology_of
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "docs" / "benchmarks.md"
CORES = 2  # what every comparison gives each side; the machine has this many


def machine() -> str:
    """One paragraph: CPU, cores, memory, load, software versions."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = []
    for dist in ("scikit-learn", "xgboost-cpu", "lightgbm", "catboost", "pika", "pymongo"):
        with contextlib.suppress(Exception):
            import importlib.metadata

            versions.append(f"{dist} {importlib.metadata.version(dist)}")
    rabbit = "RabbitMQ 3.10 (Debian package)"
    with contextlib.suppress(Exception):
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if out:
            rabbit = f"RabbitMQ {out} (Debian package)"
    store = "FerretDB v1.24.2 on SQLite" if not os.environ.get("MONGODB_URL") else "MONGODB_URL"
    return (
        f"{cpu}, {os.cpu_count()} logical cores, {memory:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"{rabbit}, {store}; {', '.join(versions)}. "
        f"Load average at the start (1/5/15 min): {load}."
    )


@dataclass(frozen=True)
class Spread:
    """Median of repetitions with their min and max."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(tuple(values))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def fmt(self, digits: int = 2, unit: str = "") -> str:
        lo, hi = min(self.values), max(self.values)
        return f"{self.median:.{digits}f}{unit} ({lo:.{digits}f}..{hi:.{digits}f})"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class Scored(Protocol):
    """A side's run of one search, as the progress lines report it."""

    @property
    def best(self) -> float: ...

    @property
    def fit_s(self) -> float: ...

    @property
    def wall_s(self) -> float: ...


def progress(what: str, runs: Mapping[str, Scored]) -> None:
    """One line per finished seed: each side's best score, fit and wall seconds."""
    print(
        f"{what}: "
        + ", ".join(
            f"{side} best {r.best:.4f} fit {r.fit_s:.1f} s wall {r.wall_s:.1f} s"
            for side, r in runs.items()
        ),
        flush=True,
    )


def seconds_row(label: str, values: Sequence[float]) -> str:
    """A Markdown row: the median of `values` (seconds), with min, max and how many runs."""
    if len(values) == 1:
        return f"| {label} | {values[0]:.0f} s (1 run) |"
    return (
        f"| {label} | median {statistics.median(values):.0f} s "
        f"(min {min(values):.0f}, max {max(values):.0f}; {len(values)} runs) |"
    )


def command_line() -> str:
    args = " ".join(sys.argv[1:])
    return f"uv run --group peers python -m bench {args}".strip()


def write_section(name: str, title: str, body: str, command: str | None = None) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"{start}\n## {title}\n\n"
        f"Measured {stamp} with `{command or command_line()}` on: {machine()}\n\n"
        f"{body.strip()}\n{end}"
    )
    report = REPORT
    report.parent.mkdir(parents=True, exist_ok=True)
    text = report.read_text() if report.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    report.write_text(text)
    print(section, flush=True)


def in_fresh_process(module: str, side: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run a peer as `python -m MODULE SIDE SPEC_JSON OUT_JSON` in a process of its own (its
    libraries, threads and workers all its own) and return the JSON it wrote."""
    with tempfile.TemporaryDirectory(prefix="tunefleet-bench-peer-") as tmp:
        out = Path(tmp) / "result.json"
        done = subprocess.run(
            [sys.executable, "-m", module, side, json.dumps(spec), str(out)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"{side} failed ({done.returncode}): {done.stderr[-3000:]}")
        return json.loads(out.read_text())  # type: ignore[no-any-return]


def json_path(name: str) -> Path:
    """Where `save_json(name, ...)` keeps its raw results: next to the report they belong to."""
    return REPORT.parent / f".{REPORT.stem}-{name}.json"


def save_json(name: str, data: object) -> Path:
    """Raw results for other steps (the scale model), next to the report they belong to."""
    path = json_path(name)
    path.write_text(json.dumps(data, indent=2))
    return path


# --- services and pipelines -----------------------------------------------------------------


@contextlib.contextmanager
def services_up() -> Iterator[Services]:
    root = Path(tempfile.mkdtemp(prefix="tunefleet-bench-"))
    with running(root / "services") as services:
        yield services


@dataclass
class Run:
    """One pipeline of fresh processes on its own namespace and database."""

    services: Services
    pipeline: Pipeline
    settings: ClientSettings
    client: Client

    def pid(self, name: str) -> int:
        return self.pipeline.processes[name].pid

    def names(self) -> list[str]:
        return list(self.pipeline.processes)


def isolated(services: Services) -> ClientSettings:
    """Settings of a namespace and database of their own (one fresh tag for both): a run sees
    nothing of another's queues and results."""
    tag = f"b{uuid.uuid4().hex[:10]}"
    return ClientSettings(
        rabbitmq_url=services.rabbitmq_url,
        mongodb_url=services.mongodb_url,
        tunefleet_namespace=tag,
        mongodb_database=tag,
    )


@contextlib.contextmanager
def pipeline(
    services: Services,
    *,
    workers: int,
    start: Sequence[str] = ("collector", "publisher"),
    env: dict[str, str] | None = None,
) -> Iterator[Run]:
    settings = isolated(services)
    tag = settings.tunefleet_namespace
    isolation = {"TUNEFLEET_NAMESPACE": tag, "MONGODB_DATABASE": tag, **(env or {})}
    log_dir = Path(tempfile.mkdtemp(prefix="tunefleet-bench-logs-"))
    with Pipeline(services, log_dir, env=isolation) as running_pipeline:
        for service in start:
            running_pipeline.start(service)
        for i in range(workers):
            running_pipeline.start("worker", f"worker-{i + 1}")
        run = Run(services, running_pipeline, settings, Client(settings))
        wait_ready(run, workers=workers, start=start)
        try:
            yield run
        finally:
            connect_store(settings).client.drop_database(tag)
    _delete_queues(settings)


def _delete_queues(settings: ClientSettings) -> None:
    # Each run has its own namespace; what it left in the broker would only take memory.
    topology = topology_of(settings)
    connection, channel = connect(settings, retry_for_s=10)
    try:
        for queue in (
            topology.trials_queue,
            topology.studies_queue,
            topology.events_queue,
            topology.dead_letter_queue,
            topology.dead_letter_collector_queue,
        ):
            channel.queue_delete(queue)
    finally:
        connection.close()


def queue_state(settings: ClientSettings, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of one of the study's queues."""
    connection, channel = connect(settings, retry_for_s=10)
    try:
        ok = channel.queue_declare(queue, passive=True)
        return int(ok.method.message_count), int(ok.method.consumer_count)
    finally:
        connection.close()


def wait_ready(run: Run, *, workers: int, start: Sequence[str], timeout: float = 120) -> None:
    """Until every started service consumes its queue: the clock starts on a warm pipeline."""
    topology = topology_of(run.settings)
    wanted = {topology.trials_queue: workers}
    if "publisher" in start:
        wanted[topology.studies_queue] = 1
    if "collector" in start:
        wanted[topology.events_queue] = 1
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if all(queue_state(run.settings, q)[1] >= n for q, n in wanted.items()):
                return
        for name, proc in run.pipeline.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} before it was ready")
        time.sleep(0.2)
    raise TimeoutError(f"services not consuming within {timeout:.0f} s: {wanted}")


def wait_stored(run: Run, study_id: str, n_trials: int, timeout: float, poll: float = 0.5) -> None:
    db = connect_store(run.settings)
    deadline = time.monotonic() + timeout
    while db.trials.count_documents({"study_id": study_id}) < n_trials:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{study_id}: not all {n_trials} trials stored in {timeout:.0f} s")
        for name, proc in run.pipeline.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} during the benchmark")
        time.sleep(poll)


def trial_docs(run: Run, study_id: str) -> list[dict[str, Any]]:
    return list(connect_store(run.settings).trials.find({"study_id": study_id}))


def last_stored_at(docs: Sequence[dict[str, Any]]) -> float:
    """When the collector wrote the last result: the end of an end-to-end measurement."""
    return max(float(d["stored_at"]) for d in docs)


def run_study(services: Services, spec: dict[str, Any], n_trials: int) -> dict[str, Any]:
    """One study on a fresh pipeline of `CORES` workers x 1 thread, timed from `submit` to the
    collector's write of its last result (`n_trials` of them) to MongoDB."""
    with pipeline(services, workers=CORES, env={"TUNEFLEET_WORKER_THREADS": "1"}) as run_:
        # Validated before the clock, as a notebook would have it ready.
        study = run_.client.spec(spec)
        t0 = time.time()
        study_id = run_.client.submit(study)
        wait_stored(run_, study_id, n_trials, timeout=3600)
        docs = trial_docs(run_, study_id)
    failed = [d for d in docs if d["status"] != "done"]
    if failed:
        raise RuntimeError(f"{len(failed)} trials failed: {failed[0].get('error')}")
    scores = [(d["library"], d["params"], d["score"]) for d in docs]
    return {"wall_s": last_stored_at(docs) - t0, "scores": scores, "docs": docs}


# --- processes ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its children (RabbitMQ runs beam.smp under sh)."""
    try:
        proc = psutil.Process(pid)
        total = 0.0
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = p.cpu_times()
                total += times.user + times.system
        return total
    except psutil.Error:
        return 0.0


def _status_kb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    raise KeyError(field)


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """The kernel's high-water mark of resident memory over the process's whole life."""
    return _status_kb(pid, "VmHWM") / 1024


def service_pids(services: Services) -> dict[str, int]:
    """The broker's and the store's process ids, where this benchmark started them."""
    pids: dict[str, int] = {}
    for name, local in (("rabbitmq", services.rabbitmq), ("mongodb", services.mongo)):
        proc = getattr(local, "_proc", None) if local is not None else None
        if proc is not None:
            pids[name] = int(proc.pid)
    return pids
