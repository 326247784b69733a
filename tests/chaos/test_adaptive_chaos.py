"""Adaptive studies (TPE, ASHA) under kill -9 of the planner, again and again, and of a worker,
the collector and the broker, and with the store stopped for a while: each ends with exactly
its n_trials trials, none lost, none twice, each with the score its parameters give, and the
planner rebuilt its searches from the store.
`make chaos` runs it with more trials (CHAOS_ADAPTIVE_TRIALS)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError
from tunefleet.client import Client
from tunefleet_dev.devservices import Pipeline
from tunefleet_runtime.settings import ClientSettings

from tests.chaos.harness import OwnServices
from tests.support.badinputs import service_env

N_TRIALS = int(os.environ.get("CHAOS_ADAPTIVE_TRIALS", "40"))
ASHA_TRIALS = 30
RUNGS = [2, 6, 18]
ASHA: dict[str, Any] = {
    "name": "chaos-asha",
    "dataset": "iris",
    "cv": {"folds": 2},
    "search": {
        "lightgbm": {
            "fixed": {"num_leaves": 4},
            "asha": {
                "n_trials": ASHA_TRIALS,
                "max_in_flight": 3,
                "min_rounds": RUNGS[0],
                "max_rounds": RUNGS[-1],
                "space": {"learning_rate": {"loguniform": [0.01, 0.5]}},
            },
        }
    },
}
SPEC: dict[str, Any] = {
    "name": "chaos-tpe",
    "dataset": "iris",
    "cv": {"folds": 2},
    "search": {
        "noop": {
            "fixed": {"sleep_s": 0.4},
            "tpe": {
                "n_trials": N_TRIALS,
                "max_in_flight": 4,
                "n_startup": 6,
                "space": {"score": {"uniform": [0.0, 1.0]}, "x": {"uniform": [-1.0, 1.0]}},
            },
        }
    },
}
# (results stored, fault): each fault once that many trials of the study have a result.
FAULTS = [
    (3, "planner"),
    (7, "worker"),
    (10, "planner"),
    (14, "collector"),
    (18, "broker"),
    (22, "planner"),
    (27, "planner+collector"),
    (31, "planner"),
    (34, "store"),
]


@pytest.mark.services
@pytest.mark.timeout(600)
def test_an_adaptive_study_survives_kill_9_of_the_planner(
    chaos_services: OwnServices, tmp_path: Path
) -> None:
    tag = f"a{uuid.uuid4().hex[:10]}"
    env = {
        "TUNEFLEET_NAMESPACE": tag,
        "MONGODB_DATABASE": tag,
        "TUNEFLEET_GRACE_PERIOD_S": "1",
        **service_env(tmp_path / "data"),
    }
    settings = ClientSettings(
        rabbitmq_url=chaos_services.rabbitmq.url,
        mongodb_url=chaos_services.mongo.url,
        tunefleet_namespace=tag,
        mongodb_database=tag,
    )
    db = MongoClient(chaos_services.mongo.url, serverSelectionTimeoutMS=2000)[tag]

    def stored(study_id: str) -> int:
        try:
            return db.trials.count_documents({"study_id": study_id})
        except PyMongoError:
            return -1

    def kill(pipeline: Pipeline, name: str, service: str) -> None:
        proc = pipeline.processes[name]
        proc.kill()
        proc.wait()
        pipeline.start(service, name)

    done: list[str] = []
    with Pipeline(chaos_services.services(), tmp_path / "logs", env=env) as pipeline:
        pipeline.start_all(workers=3)
        study_id = str(Client(settings).submit(SPEC))
        asha_id = str(Client(settings).submit(ASHA))
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline and (
            stored(study_id) < N_TRIALS or stored(asha_id) < ASHA_TRIALS
        ):
            count = stored(study_id)
            if len(done) < len(FAULTS) and count >= FAULTS[len(done)][0]:
                fault = FAULTS[len(done)][1]
                if "planner" in fault:
                    kill(pipeline, "publisher", "publisher")
                if "collector" in fault:
                    kill(pipeline, "collector", "collector")
                if fault == "worker":
                    kill(pipeline, "worker-2", "worker")
                if fault == "broker":
                    chaos_services.rabbitmq.restart()
                if fault == "store":
                    chaos_services.mongo.stop()
                    time.sleep(4)
                    chaos_services.mongo.start()
                done.append(fault)
            time.sleep(0.1)
        # Let anything left over (a trial published twice) land before counting.
        time.sleep(3)
        alive = {name: proc.poll() is None for name, proc in pipeline.processes.items()}
        planner_log = (tmp_path / "logs" / "publisher.log").read_text(errors="replace")

    assert done == [fault for _, fault in FAULTS]  # every fault, each while the study ran
    docs = list(db.trials.find({"study_id": study_id}))
    ids = [d["_id"] for d in docs]
    planned = {d["_id"] for d in db.planned.find({"study_id": study_id})}
    rebuilt = planner_log.count("adaptive searches rebuilt from")
    print(
        f"\nadaptive chaos: tpe trials={len(set(ids))}/{N_TRIALS} planned={len(planned)} "
        f"faults={','.join(done)} rebuilt={rebuilt} "
        f"published_again={planner_log.count('published again')}"
    )
    assert len(planned) == N_TRIALS  # trials = n_trials: the searches decided no more
    assert len(ids) - len(set(ids)) == 0  # duplicated 0
    assert planned - set(ids) == set()  # lost 0
    assert set(ids) - planned == set()  # nothing made up
    for doc in docs:
        assert doc["status"] == "done" and doc["score"] == doc["params"]["score"], doc
    asha = list(db.trials.find({"study_id": asha_id}))
    asha_ids = {d["_id"] for d in asha}
    assert len(asha) == len(asha_ids) == ASHA_TRIALS
    assert asha_ids == {d["_id"] for d in db.planned.find({"study_id": asha_id})}
    assert all(d["status"] == "done" and d["params"]["n_estimators"] in RUNGS for d in asha)
    assert any(d["params"]["n_estimators"] == RUNGS[-1] for d in asha)  # promoted to the top
    # The planner came back four times to a study in the middle, and went on from the store.
    assert rebuilt >= 4
    assert all(alive.values()), alive
