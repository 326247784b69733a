"""The fault-injection run: a study on real processes, and every fault of issue 3 during it.

One code path for CI (small numbers) and `make chaos` (the full figures); `ChaosConfig.from_env`
reads the numbers. The run:

1. starts a collector, a publisher and N workers (subprocesses) on a broker and a store of its
   own (both are restarted by the run, so they cannot be shared with other tests);
2. submits the main study: ordinary noop trials of a known score, some longer ones (SIGTERM
   abandons them), some designed to fail (noop `fail`, a combination LightGBM rejects), and one
   "poison" trial that never ends: every worker that takes it is killed, until the quorum
   queue's delivery limit dead-letters it;
3. injects every bad input of the catalogue onto the live queues;
4. as the study progresses: kill -9 of random workers (each restarted), SIGTERM of random
   workers (each must exit 0, then is restarted), a RabbitMQ restart while the publisher is in
   the middle of publishing a second, bulk study, the collector killed with kill -9, the store
   stopped for a while;
5. waits for both studies to end and checks: one stored result per trial, none missing, none
   extra, scores as the trials' parameters say, the designed failures failed with the right
   reason, every bad input's outcome, every service still up and still working.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError
from tunefleet.client import Client
from tunefleet_dev.devservices import LocalMongo, LocalRabbitMQ, Pipeline, Services
from tunefleet_publisher.planner import expand
from tunefleet_runtime.broker import connect, topology_of
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store import study_status
from tunefleet_runtime.store.mongo import MongoStore
from tunefleet_runtime.validation import parse_spec

from tests.support.badinputs import (
    catalogue,
    inject,
    register_study,
    seed_store,
    service_env,
    wait_for,
)
from tests.support.store_faults import refusing_writes

Doc = dict[str, Any]


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class ChaosConfig:
    """The run's numbers; the defaults are the short form CI runs."""

    trials: int = 30  # ordinary noop trials
    workers: int = 3
    kills: int = 3  # kill -9 of a random worker (the poison trial's kills come on top)
    sigterms: int = 2
    store_outage_s: float = 4.0
    store_refuse_s: float = 5.0  # the store up, answering pings, refusing every write
    delivery_limit: int = 2
    trial_s: float = 2.0  # how long an ordinary trial sleeps
    bulk_trials: int = 300  # the study being published when RabbitMQ restarts
    grace_s: float = 1.0  # workers' TUNEFLEET_GRACE_PERIOD_S
    real_library: bool = True
    timeout_s: float = 420.0
    seed: int = 0

    @classmethod
    def from_env(cls) -> ChaosConfig:
        d = cls()
        return cls(
            trials=_env_int("CHAOS_TRIALS", d.trials),
            workers=_env_int("CHAOS_WORKERS", d.workers),
            kills=_env_int("CHAOS_KILLS", d.kills),
            sigterms=_env_int("CHAOS_SIGTERMS", d.sigterms),
            store_outage_s=_env_float("CHAOS_STORE_OUTAGE_S", d.store_outage_s),
            store_refuse_s=_env_float("CHAOS_STORE_REFUSE_S", d.store_refuse_s),
            delivery_limit=_env_int("CHAOS_DELIVERY_LIMIT", d.delivery_limit),
            trial_s=_env_float("CHAOS_TRIAL_S", d.trial_s),
            bulk_trials=_env_int("CHAOS_BULK_TRIALS", d.bulk_trials),
            grace_s=_env_float("CHAOS_GRACE_S", d.grace_s),
            real_library=os.environ.get("CHAOS_REAL_LIBRARY", "1") != "0",
            timeout_s=_env_float("CHAOS_TIMEOUT_S", d.timeout_s),
            seed=_env_int("CHAOS_SEED", int(time.time())),
        )


@dataclass
class ChaosReport:
    config: ChaosConfig
    trials: int = 0  # in the main study
    bulk_trials: int = 0
    kills: int = 0
    poison_kills: int = 0
    sigterms: int = 0
    sigterm_exit_codes: list[int | None] = field(default_factory=list)
    broker_restarts: int = 0
    broker_restart_mid_submission: bool = False
    store_outages: int = 0
    store_outage_s: float = 0.0
    collector_kills: int = 0
    store_refusals: int = 0
    store_refusal_s: float = 0.0
    resubmissions: int = 0
    bad_inputs: int = 0
    actions_mid_study: int = 0
    actions: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    wrong: list[str] = field(default_factory=list)
    failed_as_designed: int = 0
    redeliveries: int = 0
    redelivered_trials: int = 0
    # Deliveries of a trial after its first: after a crash that took the one in hand (kill -9,
    # SIGTERM past the grace period, broker restart, the poison trial), or for no good reason.
    recomputed_after_crash: int = 0
    recomputed_otherwise: list[str] = field(default_factory=list)
    bad_input_problems: list[str] = field(default_factory=list)
    dead_services: list[str] = field(default_factory=list)
    probe_ok: bool = False
    elapsed_s: float = 0.0
    timeline: list[str] = field(default_factory=list)  # "12.3 s: what happened"

    def summary(self) -> str:
        return (
            f"chaos: trials={self.trials} bulk_trials={self.bulk_trials} "
            f"workers={self.config.workers} kill9={self.kills + self.poison_kills} "
            f"(poison {self.poison_kills}) sigterm={self.sigterms} "
            f"broker_restarts={self.broker_restarts} "
            f"(mid-submission {'yes' if self.broker_restart_mid_submission else 'no'}) "
            f"store_outages={self.store_outages} ({self.store_outage_s:.1f} s) "
            f"collector_kill9={self.collector_kills} "
            f"store_refusing_writes={self.store_refusals} ({self.store_refusal_s:.1f} s) "
            f"resubmissions={self.resubmissions} bad_inputs={self.bad_inputs} "
            f"lost={self.lost} duplicated={self.duplicated} "
            f"recomputed={self.recomputed_after_crash + len(self.recomputed_otherwise)} "
            f"(after a crash {self.recomputed_after_crash}, "
            f"otherwise {len(self.recomputed_otherwise)}) unexpected={self.unexpected} "
            f"failed_as_designed={self.failed_as_designed} redeliveries={self.redeliveries} "
            f"elapsed_s={self.elapsed_s:.0f} seed={self.config.seed}"
        )

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


@dataclass(frozen=True)
class OwnServices:
    """A broker and a store that only this run uses, so it may restart them."""

    rabbitmq: LocalRabbitMQ
    mongo: LocalMongo

    def services(self) -> Services:
        return Services(
            rabbitmq_url=self.rabbitmq.url,
            mongodb_url=self.mongo.url,
            rabbitmq=self.rabbitmq,
            mongo=self.mongo,
            origin="local",
        )


def own_services(root: Path) -> Iterator[OwnServices]:
    rabbit = LocalRabbitMQ(root / "rabbitmq")
    mongo = LocalMongo(root / "mongo")
    try:
        rabbit.start()
        mongo.start()
        yield OwnServices(rabbit, mongo)
    finally:
        mongo.stop()
        rabbit.stop()


def _spec(config: ChaosConfig) -> dict[str, Any]:
    long_ = max(2, config.trials // 10)
    grids: list[dict[str, Any]] = [
        # Ordinary trials; each score is unique, so a stored score proves whose result it is.
        {
            "score": [round(0.001 * (i + 1), 6) for i in range(config.trials)],
            "sleep_s": [config.trial_s],
        },
        # Longer than the grace period: a SIGTERM hands them back, another worker resumes them.
        {
            "score": [round(0.5 + 0.001 * i, 6) for i in range(long_)],
            "sleep_s": [config.grace_s * 3],
        },
        {"fail": [True], "x": [1.0, 2.0]},
        {"sleep_s": [86_400.0], "x": [-1.0]},  # the poison trial
    ]
    search: dict[str, Any] = {"noop": {"grid": grids}}
    if config.real_library:
        # A random forest without bagging is a combination LightGBM itself refuses.
        search["lightgbm"] = {
            "fixed": {"n_estimators": 5, "num_leaves": 4},
            "grid": {"boosting_type": ["gbdt", "rf"]},
        }
    return {"name": "chaos", "dataset": "iris", "cv": {"folds": 2}, "search": search}


class _Run:
    def __init__(
        self, config: ChaosConfig, own: OwnServices, pipeline: Pipeline, settings: ClientSettings
    ) -> None:
        self.started = time.monotonic()
        self.config = config
        self.own = own
        self.pipeline = pipeline
        self.settings = settings
        self.rng = random.Random(config.seed)
        self.report = ChaosReport(config)
        # The run's own reads give up fast: the store is down on purpose for a while.
        client: MongoClient[Doc] = MongoClient(
            own.mongo.url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
        )
        self.db: Database[Doc] = client[settings.mongodb_database]
        self.poison_attempt_killed = 0
        self.workers = [f"worker-{i + 1}" for i in range(config.workers)]
        self.spawned_at = dict.fromkeys(self.workers, 0.0)
        # (when, which worker or "*" for all) each crash that took trials in hand
        self.crashes: list[tuple[float, str]] = []

    def note(self, what: str) -> None:
        self.report.timeline.append(f"{time.monotonic() - self.started:6.1f} s: {what}")

    # -- what the store says ---------------------------------------------------------------

    def _count(self, query: Doc) -> int | None:
        try:
            return self.db.trials.count_documents(query)
        except PyMongoError:
            return None

    def _latest_start(self, query: Doc, by: str = "started_at") -> Doc | None:
        try:
            return next(iter(self.db.starts.find(query).sort(by, -1).limit(1)), None)
        except PyMongoError:
            return None

    # -- faults ----------------------------------------------------------------------------

    def _restart_worker(self, name: str) -> None:
        self.crashes.append((time.time(), name))
        self.spawned_at[name] = time.time()
        self.pipeline.start("worker", name)

    def _eligible_worker(self, poison_id: str) -> str | None:
        """A random worker that has taken a trial since it (re)started, so that the fault hits
        a trial in hand, and whose trial may take one more delivery: random faults must never
        be what pushes an ordinary trial over the delivery limit."""
        names = self.workers[:]
        self.rng.shuffle(names)
        for name in names:
            if self.pipeline.processes[name].poll() is not None:
                continue
            start = self._latest_start({"worker": name})
            if start is None or start["started_at"] < self.spawned_at[name]:
                continue
            if start["trial_id"] == poison_id:
                continue
            if start["attempt"] < self.config.delivery_limit:
                return name
        return None

    def kill_worker(self, poison_id: str) -> bool:
        name = self._eligible_worker(poison_id)
        if name is None:
            return False
        proc = self.pipeline.processes[name]
        proc.kill()
        proc.wait()
        self._restart_worker(name)
        self.report.kills += 1
        self.note(f"kill -9 {name}")
        return True

    def sigterm_worker(self, poison_id: str) -> bool:
        name = self._eligible_worker(poison_id)
        if name is None:
            return False
        proc = self.pipeline.processes[name]
        proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = proc.wait(timeout=self.config.grace_s + 30)
        except Exception:
            code = None
            proc.kill()
            proc.wait()
        self.report.sigterm_exit_codes.append(code)
        self._restart_worker(name)
        self.report.sigterms += 1
        self.note(f"SIGTERM {name}: exit {code}")
        return True

    def kill_poison_holder(self, poison_id: str) -> None:
        start = self._latest_start({"trial_id": poison_id}, by="attempt")
        if start is None or start["attempt"] <= self.poison_attempt_killed:
            return
        self.poison_attempt_killed = start["attempt"]
        proc = self.pipeline.processes.get(start["worker"])
        if proc is None or proc.poll() is not None:
            return  # its worker already died: the broker redelivers the poison anyway
        proc.kill()
        proc.wait()
        self._restart_worker(start["worker"])
        self.report.poison_kills += 1
        self.note(f"kill -9 {start['worker']} (poison trial, attempt {start['attempt']})")

    def restart_broker_mid_submission(self, client: Client) -> str:
        """Submit the bulk study and restart RabbitMQ while its trials are being published."""
        spec = {
            "name": "chaos-bulk",
            "dataset": "iris",
            "cv": {"folds": 2},
            "search": {"noop": {"grid": {"x": [float(i) for i in range(self.config.bulk_trials)]}}},
        }
        connection, channel = connect(self.settings, retry_for_s=30)
        queue = topology_of(self.settings).trials_queue
        before = channel.queue_declare(queue, passive=True).method.message_count
        bulk_id = str(client.submit(spec))
        deadline = time.monotonic() + 60
        try:
            # Publishing has begun once the queue grows; stopping the broker takes its tools a
            # second or two, while publishing the bulk study takes several.
            while time.monotonic() < deadline:
                if channel.queue_declare(queue, passive=True).method.message_count > before:
                    break
                connection.sleep(0.01)
        finally:
            connection.close()
        self.note("RabbitMQ restarting")
        self.crashes.append((time.time(), "*"))
        self.own.rabbitmq.restart()
        self.report.broker_restarts += 1
        self.note("RabbitMQ back")
        return bulk_id

    def stop_store(self) -> None:
        started = time.monotonic()
        self.note("store stopping")
        self.own.mongo.stop()
        time.sleep(self.config.store_outage_s)
        self.own.mongo.start()
        self.note("store back")
        self.report.store_outages += 1
        self.report.store_outage_s += time.monotonic() - started

    def store_refuses_writes(self) -> None:
        started = time.monotonic()
        assert self.own.mongo.pid is not None
        self.note("store refusing writes")
        with refusing_writes(self.own.mongo.pid):
            time.sleep(self.config.store_refuse_s)
        self.note("store writing again")
        self.report.store_refusals += 1
        self.report.store_refusal_s += time.monotonic() - started

    def resubmit(self, spec: dict[str, Any]) -> None:
        """The running study submitted twice more, at once: nothing may run again."""
        client = Client(self.settings)
        threads = [threading.Thread(target=client.submit, args=(spec,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.report.resubmissions += len(threads)
        self.note("study submitted twice more")

    def kill_collector(self) -> None:
        proc = self.pipeline.processes["collector"]
        proc.kill()
        proc.wait()
        self.pipeline.start("collector")
        self.report.collector_kills += 1
        self.note("kill -9 collector")

    # -- the run ---------------------------------------------------------------------------

    def plan(self) -> list[str]:
        faults = ["kill"] * self.config.kills + ["sigterm"] * self.config.sigterms
        self.rng.shuffle(faults)
        half = len(faults) // 2
        # The broker first: the bulk study it interrupts then queues behind the main one.
        return [
            "broker",
            *faults[:half],
            "collector",
            "resubmit",
            *faults[half:],
            "store",
            "store-refuses",
        ]

    def run(self, client: Client, root: Path) -> ChaosReport:
        started = time.monotonic()
        config = self.config
        raw_spec = _spec(config)
        spec = parse_spec(raw_spec)
        study_id = str(client.submit(spec))
        trials = list(expand(spec, study_id))
        self.report.trials = len(trials)
        by_id = {t.trial_id: t for t in trials}
        poison_id = next(t.trial_id for t in trials if t.params.get("sleep_s") == 86_400.0)
        ordinary = {
            t.trial_id
            for t in trials
            if t.library == "noop" and "score" in t.params and t.params.get("sleep_s") != 86_400.0
        }

        bad_study = f"chaos-bad-{uuid.uuid4().hex[:8]}"
        bad = catalogue(bad_study)
        seed_store(self.db)
        register_study(self.db, bad_study)
        connection, channel = connect(self.settings, retry_for_s=30)
        try:
            inject(channel, topology_of(self.settings), bad)
        finally:
            connection.close()
        self.report.bad_inputs = len(bad)

        plan = self.plan()
        self.report.actions = len(plan)
        bulk_id: str | None = None
        deadline = started + config.timeout_s
        step = 0
        while time.monotonic() < deadline:
            self.kill_poison_holder(poison_id)
            done = self._count({"_id": {"$in": list(ordinary)}})
            if step < len(plan) and done is not None:
                # Fault i once 5% + i/n of 55% of the ordinary trials are done: all of them
                # while ordinary trials are still to run.
                threshold = int(len(ordinary) * (0.05 + 0.55 * step / len(plan)))
                if done >= threshold:
                    action = plan[step]
                    mid_study = done < len(ordinary)
                    acted = True
                    if action == "kill":
                        acted = self.kill_worker(poison_id)
                    elif action == "sigterm":
                        acted = self.sigterm_worker(poison_id)
                    elif action == "broker":
                        bulk_id = self.restart_broker_mid_submission(client)
                    elif action == "collector":
                        self.kill_collector()
                    elif action == "resubmit":
                        self.resubmit(raw_spec)
                    elif action == "store":
                        self.stop_store()
                    else:
                        self.store_refuses_writes()
                    if acted:
                        step += 1
                        self.report.actions_mid_study += int(mid_study)
            finished = self._count({"study_id": study_id})
            bulk_finished = self._count({"study_id": bulk_id}) if bulk_id else None
            if (
                step == len(plan)
                and finished == len(trials)
                and bulk_finished == config.bulk_trials
            ):
                break
            time.sleep(0.2)

        self.note("both studies finished")
        outcome = wait_for(
            self.settings, self.db, bad, timeout=max(30.0, deadline - time.monotonic())
        )
        self.report.bad_input_problems = outcome.problems
        self._check(study_id, by_id, ordinary, poison_id, bulk_id)
        self._check_services(client)
        self.note("checked")
        self.report.broker_restart_mid_submission = _publisher_reconnected_mid_study(
            root / "logs" / "publisher.log", bulk_id
        )
        self.report.elapsed_s = time.monotonic() - started
        return self.report

    def _check(
        self,
        study_id: str,
        by_id: dict[str, Any],
        ordinary: set[str],
        poison_id: str,
        bulk_id: str | None,
    ) -> None:
        report = self.report
        docs = list(self.db.trials.find({"study_id": study_id}))
        stored_ids = [d["_id"] for d in docs]
        report.duplicated = len(stored_ids) - len(set(stored_ids))
        report.lost = len(set(by_id) - set(stored_ids))
        report.unexpected = len(set(stored_ids) - set(by_id))
        for doc in docs:
            trial = by_id.get(doc["_id"])
            if trial is None:
                continue
            params = trial.params
            want: tuple[str, str | None]
            if doc["_id"] == poison_id:
                want = ("failed", "delivery-limit")
            elif params.get("fail") or params.get("boosting_type") == "rf":
                want = ("failed", "training-error")
            else:
                want = ("done", None)
            got = (doc["status"], doc.get("reason"))
            if got != want:
                report.wrong.append(f"{doc['_id']} {dict(params)}: {got}, want {want}")
            elif want[0] == "failed":
                report.failed_as_designed += 1
            if params.get("boosting_type") == "rf" and "bagging" not in (doc.get("error") or ""):
                report.wrong.append(f"{doc['_id']}: not LightGBM's message: {doc.get('error')}")
            if doc["_id"] in ordinary and doc.get("score") != params["score"]:
                report.wrong.append(f"{doc['_id']}: score {doc.get('score')} != {params['score']}")
        if bulk_id is not None:
            bulk = list(self.db.trials.find({"study_id": bulk_id}, {"status": 1}))
            report.bulk_trials = len(bulk)
            report.lost += self.config.bulk_trials - len({d["_id"] for d in bulk})
            report.wrong += [
                f"bulk {d['_id']}: {d['status']}" for d in bulk if d["status"] != "done"
            ]
        status = study_status(MongoStore(self.db), study_id)
        if status is not None:
            report.redeliveries = status.redeliveries
            report.redelivered_trials = status.redelivered
        self._recomputed([study_id, *([bulk_id] if bulk_id else [])], poison_id)

    def _recomputed(self, study_ids: list[str], poison_id: str) -> None:
        """Each delivery of a trial after its first, told apart by whether a crash took the
        trial's previous delivery: its worker killed (or stopped) or the broker restarted
        after that delivery began."""
        starts: dict[str, list[Doc]] = {}
        for doc in self.db.starts.find({"study_id": {"$in": study_ids}}):
            starts.setdefault(doc["trial_id"], []).append(doc)
        for trial_id, docs in starts.items():
            docs.sort(key=lambda d: d["attempt"])
            for earlier, later in itertools.pairwise(docs):
                crashed = trial_id == poison_id or any(
                    when >= earlier["started_at"] and who in ("*", earlier["worker"])
                    for when, who in self.crashes
                )
                if crashed:
                    self.report.recomputed_after_crash += 1
                else:
                    self.report.recomputed_otherwise.append(
                        f"{trial_id} attempt {later['attempt']} after {earlier['worker']}"
                    )

    def _check_services(self, client: Client) -> None:
        self.report.dead_services = [
            name for name, proc in self.pipeline.processes.items() if proc.poll() is not None
        ]
        probe = client.submit(
            {
                "name": "chaos-probe",
                "dataset": "iris",
                "search": {"noop": {"grid": {"x": [1.0, 2.0]}}},
            }
        )
        status = client.wait(probe, timeout_s=120)
        self.report.probe_ok = (status.done, status.failed) == (2, 0)


def _publisher_reconnected_mid_study(log: Path, bulk_id: str | None) -> bool:
    """Whether the broker went away while the publisher was publishing the bulk study: its log
    then shows the connection lost after it began and the study published only afterwards."""
    if bulk_id is None or not log.exists():
        return False
    lost_at = None
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        msg = str(entry.get("msg", ""))
        if "connection lost" in msg:
            lost_at = entry.get("ts")
        if f"published study {bulk_id}" in msg:
            return lost_at is not None
    return False


def run_chaos(config: ChaosConfig, own: OwnServices, root: Path) -> ChaosReport:
    tag = f"c{uuid.uuid4().hex[:10]}"
    env = {
        "TUNEFLEET_NAMESPACE": tag,
        "MONGODB_DATABASE": tag,
        "TUNEFLEET_DELIVERY_LIMIT": str(config.delivery_limit),
        "TUNEFLEET_GRACE_PERIOD_S": str(config.grace_s),
        # One transaction per trial message: publishing the bulk study then lasts seconds, not
        # a fraction of one, and the broker restart lands inside it (the batched path commits
        # the same way, 500 messages at a time).
        "TUNEFLEET_PUBLISH_BATCH": "1",
        **service_env(root / "data"),
    }
    settings = ClientSettings(
        rabbitmq_url=own.rabbitmq.url,
        mongodb_url=own.mongo.url,
        tunefleet_namespace=tag,
        mongodb_database=tag,
        tunefleet_delivery_limit=config.delivery_limit,
    )
    with Pipeline(own.services(), root / "logs", env=env) as pipeline:
        pipeline.start_all(workers=config.workers)
        client = Client(settings)
        return _Run(config, own, pipeline, settings).run(client, root)
