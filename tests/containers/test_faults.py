"""Fault drills on the containers: `docker kill` of a worker and of the planner, a restart of
the broker and of the store, each mid-study; `docker stop` of a busy worker. Lost 0,
duplicated 0, and the SIGTERM path hands the trial back within the grace period."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from tunefleet.client import Client
from tunefleet_dev import engine

from tests.containers.conftest import ComposeStack, docker
from tests.support.waiting import wait_until

GRID = [round(0.02 * i, 2) for i in range(36)]
TPE = 12
DRILL: dict[str, Any] = {
    "name": "compose-faults",
    "dataset": "iris",
    "cv": {"folds": 2, "seed": 5},
    "chunk_size": 1,
    "search": {
        "noop": {
            "fixed": {"sleep_s": 0.5},
            "grid": {"score": GRID},
            "tpe": {
                "n_trials": TPE,
                "max_in_flight": 3,
                "n_startup": 3,
                "space": {"score": {"uniform": [0.0, 1.0]}},
            },
        }
    },
}


def _kill(stack: ComposeStack, service: str) -> None:
    """kill -9 of one container of `service`, then started again (as a node would be)."""
    container = stack.containers(service)[0]
    docker("kill", container)
    docker("start", container)


def test_kill_and_restarts_mid_study_lose_and_duplicate_nothing(
    compose_stack: ComposeStack,
) -> None:
    client = Client(compose_stack.settings())
    db = compose_stack.db()
    study = str(client.submit(DRILL))
    faults = [
        (4, lambda: _kill(compose_stack, "worker")),
        (10, lambda: _kill(compose_stack, "publisher")),
        (18, lambda: compose_stack.compose("restart", "rabbitmq")),
        (26, lambda: compose_stack.compose("restart", "mongodb")),
    ]
    done = 0

    def stored() -> int:
        try:
            return db.trials.count_documents({"study_id": study})
        except Exception:  # the store is restarting: ask again
            return -1

    deadline = time.monotonic() + 900
    while done < len(faults) or stored() < len(GRID) + TPE:
        assert time.monotonic() < deadline, f"{stored()} stored after {done} faults"
        if done < len(faults) and stored() >= faults[done][0]:
            faults[done][1]()
            done += 1
        time.sleep(0.2)
    status = Client(compose_stack.settings()).wait(study, timeout_s=300)

    docs = list(db.trials.find({"study_id": study}))
    ids = [d["_id"] for d in docs]
    planned = {d["_id"] for d in db.planned.find({"study_id": study})}
    assert len(planned) == len(GRID) + TPE == status.n_trials
    assert len(ids) - len(set(ids)) == 0  # duplicated 0
    assert planned - set(ids) == set()  # lost 0
    assert set(ids) - planned == set()  # nothing made up
    assert all(d["status"] == "done" and d["score"] == d["params"]["score"] for d in docs)
    assert compose_stack.wait_healthy()  # everything came back by itself


def test_docker_stop_of_a_busy_worker_hands_its_trial_back_within_the_grace_period(
    compose_stack: ComposeStack,
) -> None:
    # Longer than the worker's grace period (TUNEFLEET_GRACE_PERIOD_S=10): handed back (its
    # first fold, 7 s, checkpointed), not kept.
    spec = {
        "name": "compose-sigterm",
        "dataset": "iris",
        "cv": {"folds": 2, "seed": 1},
        "search": {"noop": {"fixed": {"sleep_s": 14.0}, "grid": {"score": [0.25]}}},
    }
    client = Client(compose_stack.settings())
    db = compose_stack.db()
    study = str(client.submit(spec))
    start = wait_until(
        lambda: db.starts.find_one({"study_id": study}), what="a worker to start the trial"
    )
    hostname = str(start["worker"]).rsplit("-", 1)[0]
    (busy,) = [
        c
        for c in compose_stack.containers("worker")
        if compose_stack.inspect(c)["Config"]["Hostname"] == hostname
    ]
    docker("stop", busy)  # SIGTERM, then SIGKILL after compose's stop_grace_period (15 s)
    state = compose_stack.inspect(busy)["State"]
    # 0: it exited by itself on SIGTERM, within the grace period (137 would be the SIGKILL).
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 0, False)
    result = subprocess.run(
        [engine.docker(), "logs", "--tail", "30", busy], capture_output=True, text=True, check=True
    )
    assert "handed back a message of study" in result.stderr, result.stderr
    docker("start", busy)

    status = client.wait(study, timeout_s=300)
    assert (status.done, status.failed) == (1, 0)
    (trial,) = list(db.trials.find({"study_id": study}))
    assert trial["attempts"] == 2 and trial["score"] == 0.25  # handed back, then finished
