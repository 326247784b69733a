"""A store that stalls (its process stopped: connections open, nothing answered) for longer
than the broker's heartbeat timeout, while results arrive: every result is stored once, the
collector and the planner say that they wait on the store, and neither loses its broker
connection for missed heartbeats (issue 24 item 9).

Before TUNEFLEET_STORE_TIMEOUT_S, the collector's write blocked on the silent store with no
limit, its connection loop (and pika's heartbeats) with it; the broker dropped it, and it
learnt so only once the store answered again."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError
from tunefleet.client import Client
from tunefleet_dev.devservices import Pipeline
from tunefleet_runtime.broker import topology_of
from tunefleet_runtime.settings import ClientSettings

from tests.chaos.harness import OwnServices
from tests.support.broker import queue_depth
from tests.support.waiting import wait_until

HEARTBEAT_S = 6
STORE_TIMEOUT_S = 2
# Well past the heartbeat timeout (and pika's own check, at heartbeat + 5 s): a loop held
# by the store for this long loses its connection whichever side notices first.
STALL_S = 3 * HEARTBEAT_S
# The short form (`make test`) by default; `make chaos` floods the collector with short trials
# (CHAOS_STALL_TRIALS, CHAOS_STALL_TRIAL_S), so that full batches wait through the stall.
GRID_TRIALS = int(os.environ.get("CHAOS_STALL_TRIALS", "24"))
TRIAL_S = float(os.environ.get("CHAOS_STALL_TRIAL_S", "0.3"))
TPE_TRIALS = 10
GRID: dict[str, Any] = {
    "name": "stall-grid",
    "dataset": "iris",
    "cv": {"folds": 2},
    "search": {
        "noop": {
            "fixed": {"sleep_s": TRIAL_S},
            # A score of its own per trial: a stored score proves whose result it is.
            "grid": {"score": [round(i / (GRID_TRIALS + 1), 6) for i in range(1, GRID_TRIALS + 1)]},
        }
    },
}
# The planner writes and reads the store for each result of an adaptive study: it waits too.
TPE: dict[str, Any] = {
    "name": "stall-tpe",
    "dataset": "iris",
    "cv": {"folds": 2},
    "search": {
        "noop": {
            "fixed": {"sleep_s": 0.3},
            "tpe": {
                "n_trials": TPE_TRIALS,
                "max_in_flight": 2,
                "n_startup": 4,
                "space": {"score": {"uniform": [0.0, 1.0]}},
            },
        }
    },
}
LOST_CONNECTION = "broker connection lost"


def most_waiting(log: str) -> int:
    """The most events the collector said were waiting at once."""
    return max((int(n) for n in re.findall(r"(\d+) events wait unacked", log)), default=0)


@pytest.mark.services
@pytest.mark.timeout(900)
def test_a_store_stalled_past_the_heartbeat_timeout_loses_no_result_and_no_connection(
    chaos_services: OwnServices, tmp_path: Path
) -> None:
    tag = f"s{uuid.uuid4().hex[:10]}"
    env = {
        "TUNEFLEET_NAMESPACE": tag,
        "MONGODB_DATABASE": tag,
        "TUNEFLEET_HEARTBEAT_S": str(HEARTBEAT_S),
        "TUNEFLEET_STORE_TIMEOUT_S": str(STORE_TIMEOUT_S),
        "TUNEFLEET_GRACE_PERIOD_S": "1",
    }
    settings = ClientSettings(
        rabbitmq_url=chaos_services.rabbitmq.url,
        mongodb_url=chaos_services.mongo.url,
        tunefleet_namespace=tag,
        mongodb_database=tag,
    )
    db = MongoClient(chaos_services.mongo.url, serverSelectionTimeoutMS=2000)[tag]
    store_pid = chaos_services.mongo.pid
    assert store_pid is not None
    logs = tmp_path / "logs"

    def stored(study_id: str) -> int:
        try:
            return db.trials.count_documents({"study_id": study_id})
        except PyMongoError:
            return -1

    with Pipeline(chaos_services.services(), logs, env=env) as pipeline:
        pipeline.start_all(workers=2)
        # The TPE study first: its first trials run before the grid's, and the grid's results
        # are still coming when the store stalls.
        tpe_id = str(Client(settings).submit(TPE))
        grid_id = str(Client(settings).submit(GRID))
        wait_until(
            lambda: stored(tpe_id) >= 2 and stored(grid_id) >= max(4, GRID_TRIALS // 10),
            timeout=120,
            what="the first results are stored",
        )
        os.kill(store_pid, signal.SIGSTOP)
        stalled_at = time.monotonic()
        stalled_from = time.time()
        try:
            # Results go on arriving (the workers need no store for iris): they must wait.
            time.sleep(STALL_S)
        finally:
            os.kill(store_pid, signal.SIGCONT)
        stall_s = time.monotonic() - stalled_at
        stalled_until = time.time()
        wait_until(
            lambda: stored(grid_id) == GRID_TRIALS and stored(tpe_id) == TPE_TRIALS,
            timeout=180 + GRID_TRIALS * TRIAL_S,
            what="every result is stored after the stall",
        )
        time.sleep(1)  # anything a duplicate would add, and the acks, land
        connection = pika.BlockingConnection(pika.URLParameters(chaos_services.rabbitmq.url))
        try:
            topology = topology_of(settings)
            channel = connection.channel()
            events_left = queue_depth(channel, topology.events_queue)
            dead_letters = queue_depth(channel, topology.dead_letter_queue)
        finally:
            connection.close()
        alive = {name: proc.poll() is None for name, proc in pipeline.processes.items()}

    # TPE results that reached the planner early enough in the stall for its store calls to
    # run out of time before the store came back (in `make chaos` the TPE trials queue behind
    # the big grid, and may all run after the stall).
    tpe_in_stall = db.trials.count_documents(
        {
            "study_id": tpe_id,
            "finished_at": {"$gt": stalled_from, "$lt": stalled_until - STORE_TIMEOUT_S - 1},
        }
    )
    collector_log = (logs / "collector.log").read_text(errors="replace")
    planner_log = (logs / "publisher.log").read_text(errors="replace")
    waits = collector_log.count(f"no answer within {STORE_TIMEOUT_S} s")
    print(
        f"\nstore stall: {stall_s:.1f} s (heartbeat {HEARTBEAT_S} s, store timeout "
        f"{STORE_TIMEOUT_S} s) grid={stored(grid_id)}/{GRID_TRIALS} "
        f"tpe={stored(tpe_id)}/{TPE_TRIALS} collector_waits_logged={waits} "
        f"most_events_waiting={most_waiting(collector_log)} "
        f"tpe_results_in_stall={tpe_in_stall} "
        f"planner_waits_logged={planner_log.count('no answer within')} "
        f"reconnects={collector_log.count(LOST_CONNECTION) + planner_log.count(LOST_CONNECTION)}"
    )
    for study_id, n in [(grid_id, GRID_TRIALS), (tpe_id, TPE_TRIALS)]:
        docs = list(db.trials.find({"study_id": study_id}))
        planned = {d["_id"] for d in db.planned.find({"study_id": study_id})}
        assert len(docs) == n
        assert {d["_id"] for d in docs} == planned  # none lost, none made up
        for doc in docs:
            assert doc["status"] == "done" and doc["score"] == doc["params"]["score"], doc
    assert events_left == 0 and dead_letters == 0
    # The collector said what waits, while it waited (no silent minutes).
    assert waits >= 2, collector_log[-3000:]
    assert "events wait unacked" in collector_log
    assert "the store writes again after" in collector_log
    # The planner, handed TPE results during the stall, said which study waits.
    if tpe_in_stall or GRID_TRIALS * TRIAL_S < STALL_S:
        assert f"no answer within {STORE_TIMEOUT_S} s" in planner_log, planner_log[-3000:]
        assert "waits, tried again in 2 s" in planner_log
    # Neither service's broker connection was dropped: their loops went on with heartbeats.
    assert LOST_CONNECTION not in collector_log, collector_log[-3000:]
    assert LOST_CONNECTION not in planner_log, planner_log[-3000:]
    broker_logs = "".join(
        path.read_text(errors="replace")
        for path in (chaos_services.rabbitmq.root / "log").glob("*.log")
    )
    assert "missed heartbeats" not in broker_logs
    assert all(alive.values()), alive
