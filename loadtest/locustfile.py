"""Load test: how many results per second one broker and one collector absorb.

    make load                     # 60 s, 40 worker stand-ins, writes docs/benchmarks.md
    uv run locust -f loadtest/locustfile.py --headless -u 40 -r 20 -t 60s --result-rate 100

Users (pika, one connection each, loopback only):

- `WorkerStandIn` publishes `TrialResult` events the way workers do (persistent, each publish
  confirmed by the broker), `--result-rate` results per second per user, `--batch` at a time:
  one user stands in for many workers, 40 users at 100/s offer 4,000 results/s.
- `Submitter` publishes small study requests now and then, through the real publisher.

The test starts its own collector and publisher (`tunefleet_dev.devservices.Pipeline`) on a fresh
namespace and database, against `RABBITMQ_URL`/`MONGODB_URL` when set or local services it
starts itself. When the users stop it waits for the collector to drain, then reads back every
stored result: how many were stored per second, and the latency from the event's
`finished_at` to the collector's `stored_at` (p50/p95/p99), which it prints and, with
`--report FILE`, writes as JSON. Runs in one process (no `--processes`): the namespace and the
counts live here.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from locust import User, constant_throughput, events, task
from locust.env import Environment
from locust.runners import WorkerRunner
from tunefleet_contract.messages import StudyRequest, TrialResult
from tunefleet_dev.devservices import Pipeline, Services, start_services
from tunefleet_runtime.broker import BatchChannel, connect, publish, topology_of
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_runtime.validation import parse_spec

# pika logs every connection step at INFO; the users open one connection each.
logging.getLogger("pika").setLevel(logging.WARNING)


def _options(parser: Any) -> None:
    group = parser.add_argument_group("tunefleet")
    group.add_argument(
        "--result-rate",
        type=float,
        default=100.0,
        env_var="TUNEFLEET_LOAD_RESULT_RATE",
        help="results per second each WorkerStandIn user publishes",
    )
    group.add_argument(
        "--batch",
        type=int,
        default=10,
        env_var="TUNEFLEET_LOAD_BATCH",
        help="results a WorkerStandIn publishes per task (as a worker finishing a chunk)",
    )
    group.add_argument(
        "--submit-interval",
        type=float,
        default=5.0,
        env_var="TUNEFLEET_LOAD_SUBMIT_INTERVAL",
        help="seconds between two study requests of one Submitter user",
    )
    group.add_argument(
        "--report",
        default="",
        env_var="TUNEFLEET_LOAD_REPORT",
        help="write the run's measurements here as JSON",
    )


@dataclass
class _Run:
    """What this process set up for the run, and what the users did."""

    settings: ClientSettings
    services: Services
    pipeline: Pipeline
    study_id: str
    started: float = field(default_factory=time.time)
    published: int = 0
    submitted: int = 0
    cpu_before: dict[str, float] = field(default_factory=dict)


RUN: _Run | None = None


def _cpu(pid: int) -> float:
    try:
        proc = psutil.Process(pid)
        return sum(
            t.user + t.system
            for t in (p.cpu_times() for p in [proc, *proc.children(recursive=True)])
        )
    except psutil.Error:
        return 0.0


def _pids(run: _Run) -> dict[str, int]:
    pids = {name: proc.pid for name, proc in run.pipeline.processes.items()}
    for name, local in (("rabbitmq", run.services.rabbitmq), ("mongodb", run.services.mongo)):
        proc = getattr(local, "_proc", None) if local is not None else None
        if proc is not None:
            pids[name] = int(proc.pid)
    return pids


def _set_up(environment: Environment, **_: Any) -> None:
    # At start-up, before the run's clock: the services take seconds to be ready.
    global RUN
    if isinstance(environment.runner, WorkerRunner):
        raise RuntimeError("run this locustfile in one process: no --processes or workers")
    root = Path(tempfile.mkdtemp(prefix="tunefleet-load-"))
    services = start_services(root / "services")
    tag = f"load{uuid.uuid4().hex[:8]}"
    settings = ClientSettings(
        rabbitmq_url=services.rabbitmq_url,
        mongodb_url=services.mongodb_url,
        tunefleet_namespace=tag,
        mongodb_database=tag,
    )
    pipeline = Pipeline(
        services,
        root / "logs",
        env={"TUNEFLEET_NAMESPACE": tag, "MONGODB_DATABASE": tag},
    )
    # Stopped in `_quit`; atexit too, so that a crashed locust leaves no services behind.
    atexit.register(services.stop)  # atexit runs last-registered first: the pipeline first
    atexit.register(pipeline.stop_all)
    pipeline.start("collector")
    pipeline.start("publisher")
    RUN = _Run(settings, services, pipeline, study_id=f"{tag}-results")
    _wait_consumers(RUN)


def _start(environment: Environment, **_: Any) -> None:
    if RUN is not None:
        RUN.cpu_before = {name: _cpu(pid) for name, pid in _pids(RUN).items()}
        RUN.started = time.time()


def _wait_consumers(run: _Run, timeout: float = 120) -> None:
    topology = topology_of(run.settings)
    connection, channel = connect(run.settings, retry_for_s=30)
    try:
        deadline = time.monotonic() + timeout
        for queue in (topology.events_queue, topology.studies_queue):
            while channel.queue_declare(queue, passive=True).method.consumer_count < 1:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nothing consumes {queue} after {timeout:.0f} s")
                time.sleep(0.2)
    finally:
        connection.close()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _stop(environment: Environment, **_: Any) -> None:
    run = RUN
    if run is None:
        return
    stopped = time.time()
    topology = topology_of(run.settings)
    connection, channel = connect(run.settings, retry_for_s=30)
    deadline = time.monotonic() + 120
    db = connect_store(run.settings)
    # Drained: the services ack after their effect, so empty queues and the counts reached
    # mean everything confirmed to the users is stored.
    while time.monotonic() < deadline:
        waiting = sum(
            channel.queue_declare(queue, passive=True).method.message_count
            for queue in (topology.studies_queue, topology.events_queue)
        )
        # Counting documents is itself work for the store: only once the queues are empty.
        if (
            waiting == 0
            and db.studies.count_documents({}) >= run.submitted
            and db.trials.count_documents({"study_id": run.study_id}) >= run.published
        ):
            break
        time.sleep(0.2)
    connection.close()
    drained = time.time()
    cpu = {name: _cpu(pid) - run.cpu_before.get(name, 0.0) for name, pid in _pids(run).items()}
    docs = list(
        db.trials.find({"study_id": run.study_id}, {"finished_at": 1, "stored_at": 1, "_id": 0})
    )
    latencies = [1000 * (d["stored_at"] - d["finished_at"]) for d in docs]
    stored_span = (max(d["stored_at"] for d in docs) - run.started) if docs else 0.0
    stats = environment.stats.get("trial.result", "publish")
    report = {
        "command": "PYTHONPATH=. uv run locust " + " ".join(sys.argv[1:]),
        "users": environment.parsed_options.num_users if environment.parsed_options else 0,
        "offered_per_s": run.published / max(stopped - run.started, 1e-9),
        "published": run.published,
        "stored": len(docs),
        "stored_per_s": len(docs) / max(stored_span, 1e-9),
        "seconds": stopped - run.started,
        "drain_s": drained - stopped,
        "studies_submitted": run.submitted,
        "studies_stored": db.studies.count_documents({}),
        "latency_ms": {
            "p50": _percentile(latencies, 0.50),
            "p95": _percentile(latencies, 0.95),
            "p99": _percentile(latencies, 0.99),
        },
        "publish_batch_ms": {
            "p50": stats.get_response_time_percentile(0.50),
            "p95": stats.get_response_time_percentile(0.95),
            "p99": stats.get_response_time_percentile(0.99),
        },
        "cpu_s": cpu,
    }
    print("tunefleet load test:", json.dumps(report, indent=2), flush=True)
    path = environment.parsed_options.report if environment.parsed_options else ""
    if path:
        Path(path).write_text(json.dumps(report, indent=2))


def _quit(environment: Environment, **_: Any) -> None:
    global RUN
    if RUN is not None:
        RUN.pipeline.stop_all()
        with_queues = RUN.settings
        connection, channel = connect(with_queues, retry_for_s=10)
        topology = topology_of(with_queues)
        for queue in (topology.trials_queue, topology.studies_queue, topology.events_queue):
            channel.queue_delete(queue)
        connection.close()
        connect_store(RUN.settings).client.drop_database(RUN.settings.mongodb_database)
        RUN.services.stop()
        RUN = None


class _BrokerUser(User):
    abstract = True

    def on_start(self) -> None:
        assert RUN is not None, "test_start did not run"
        self.load = RUN
        self.topology = topology_of(RUN.settings)
        self.connection, self.channel = connect(RUN.settings, retry_for_s=30)

    def on_stop(self) -> None:
        if self.connection.is_open:
            self.connection.close()

    def _fire(
        self, name: str, kind: str, started: float, length: int, exc: Exception | None
    ) -> None:
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exc,
            context={},
        )


class WorkerStandIn(_BrokerUser):
    """Many workers' worth of results: `--result-rate` per second, `--batch` per task.

    Published as a worker publishes them: one transaction per batch (`BatchChannel`).
    """

    weight = 20

    def on_start(self) -> None:
        super().on_start()
        self.batch = BatchChannel(self.connection)
        options = self.environment.parsed_options
        # Paced to a rate, not a fixed pause: a slow broker shows as missed rate and latency.
        self.pace = constant_throughput(float(options.result_rate) / float(options.batch))

    def wait_time(self) -> float:
        return float(self.pace(self))

    @task
    def publish_results(self) -> None:
        batch = int(self.environment.parsed_options.batch)
        started = time.perf_counter()
        size = 0
        error: Exception | None = None
        try:
            bodies = []
            for _ in range(batch):
                body = TrialResult(
                    study_id=self.load.study_id,
                    trial_id=uuid.uuid4().hex[:24],
                    library="noop",
                    params={"score": 0.5},
                    status="done",
                    metric="accuracy",
                    task="classification",
                    score=0.5,
                    score_std=0.0,
                    fold_scores=[0.5, 0.5, 0.5],
                    fit_time_s=0.001,
                    score_time_s=0.0,
                    worker="locust",
                    finished_at=time.time(),
                ).encode()
                bodies.append(("trial.result", body))
                size += len(body)
            self.batch.publish(self.topology.events_exchange, bodies)
            self.load.published += len(bodies)
        except Exception as exc:  # reported to locust as a failed request
            error = exc
        self._fire("trial.result", "publish", started, size, error)


class Submitter(_BrokerUser):
    """Someone submitting a small study every `--submit-interval` seconds."""

    weight = 1
    fixed_count = 1

    def wait_time(self) -> float:
        return float(self.environment.parsed_options.submit_interval)

    @task
    def submit(self) -> None:
        spec = parse_spec(
            {
                "name": f"load-{uuid.uuid4().hex[:8]}",
                "dataset": "iris",
                "search": {"noop": {"grid": {"x": [0.0, 1.0, 2.0]}}},
            }
        )
        request = StudyRequest(study_id=spec.study_id(), spec=spec, submitted_at=time.time())
        started = time.perf_counter()
        error: Exception | None = None
        body = request.encode()
        try:
            publish(self.channel, self.topology.studies_exchange, "study", body)
            self.load.submitted += 1
        except Exception as exc:  # reported to locust as a failed request
            error = exc
        self._fire("study.request", "publish", started, len(body), error)


_HOOKS: Any = events  # locust's event hooks carry no type hints
_HOOKS.init_command_line_parser.add_listener(_options)
_HOOKS.init.add_listener(_set_up)
_HOOKS.test_start.add_listener(_start)
_HOOKS.test_stop.add_listener(_stop)
_HOOKS.quitting.add_listener(_quit)
