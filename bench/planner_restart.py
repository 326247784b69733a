"""How long the workers wait after a planner restart (issue 24, item 8).

`uv run python -m bench.planner_restart [--runs N] [--kills K] [--freeze | --standby]`

A TPE study of short noop trials (3 in flight, 3 workers) on a fresh pipeline; each time
another 8 results are stored, the planner is killed (kill -9) and started again at once, as
Kubernetes or compose restarts it. Per restart, from the planner's log timestamps and the
store:

- start -> first log line: the new process up to its first word (imports, settings);
- start -> rebuilt: then connected, the first result taken, the searches rebuilt from the
  store and decided on;
- kill -> next trial: from the kill to the first start of a trial the new planner decided
  (what the workers see: their idle time, as the in-flight trials end at once).

With `--freeze` the planner is stopped (SIGSTOP) instead of killed, as a hung node leaves it:
its connection stays open until the broker misses its heartbeats, holding what it was given.
With `--standby` a second planner runs from the start (the results queue's single active
consumer keeps it waiting) and none is started after the kill: one kill per run.

Medians over every restart of every run; the table goes to docs/reliability.md by hand, with
this command.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from tunefleet_runtime.broker import topology_of
from tunefleet_runtime.store.mongo import connect_store

from bench.common import pipeline, queue_state, services_up, table, trial_docs, wait_stored

N_TRIALS = 60
SPEC: dict[str, Any] = {
    "name": "bench-planner-restart",
    "dataset": "iris",
    "cv": {"folds": 2},
    "search": {
        "noop": {
            "fixed": {"sleep_s": 0.3},
            "tpe": {
                "n_trials": N_TRIALS,
                "max_in_flight": 3,
                "n_startup": 3,
                "space": {"score": {"uniform": [0.0, 1.0]}, "x": {"uniform": [-1.0, 1.0]}},
            },
        }
    },
}


def _log_times(log: Path, since: float) -> dict[str, float]:
    """When the planner started after `since` first logged, and when it rebuilt its searches."""
    found: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        ts = float(entry.get("ts", 0))
        if ts < since:
            continue
        found.setdefault("logged", ts)
        if "adaptive searches rebuilt" in str(entry.get("msg", "")):
            found.setdefault("rebuilt", ts)
    return found


def one_run(kills: int, freeze: bool = False, standby: bool = False) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    with services_up() as services, pipeline(services, workers=3) as run:
        db = connect_store(run.settings)
        frozen: list[subprocess.Popen[bytes]] = []
        log = run.pipeline.log_dir / "publisher.log"
        if standby:
            run.pipeline.start("publisher", "publisher-2")
            log = run.pipeline.log_dir / "publisher-2.log"
            deadline = time.monotonic() + 120
            while queue_state(run.settings, topology_of(run.settings).studies_queue)[1] < 2:
                if time.monotonic() > deadline:
                    raise TimeoutError("the standby planner did not consume within 120 s")
                time.sleep(0.2)
        study = str(run.client.submit(SPEC))
        for k in range(kills):
            wait_stored(run, study, 8 * (k + 1), timeout=300, poll=0.05)
            before = {d["_id"] for d in db.planned.find({"study_id": study}, {"_id": 1})}
            proc = run.pipeline.processes["publisher"]
            killed = time.time()
            if freeze:
                os.kill(proc.pid, signal.SIGSTOP)
                frozen.append(proc)
            else:
                proc.kill()
                proc.wait()
            before |= {d["_id"] for d in db.planned.find({"study_id": study}, {"_id": 1})}
            started = time.time()
            if standby:
                del run.pipeline.processes["publisher"]  # gone for good: the standby goes on
            else:
                run.pipeline.start("publisher")
            deadline = time.monotonic() + 300
            while True:
                new = db.starts.find_one(
                    {"study_id": study, "trial_id": {"$nin": sorted(before)}},
                    sort=[("started_at", 1)],
                )
                if new is not None:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("no trial decided by the restarted planner in 300 s")
                time.sleep(0.05)
            times = _log_times(log, started)
            rows.append(
                {
                    # The standby's first line after the kill: its rebuild.
                    "start_to_first_log_line": times["logged"] - started,
                    "start_to_rebuilt": times.get("rebuilt", float("nan")) - started,
                    "kill_to_next_trial": float(new["started_at"]) - killed,
                }
            )
        wait_stored(run, study, N_TRIALS, timeout=600)
        assert len(trial_docs(run, study)) == N_TRIALS
        for proc in frozen:
            proc.kill()
            proc.wait()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kills", type=int, default=4)
    faults = parser.add_mutually_exclusive_group()
    faults.add_argument("--freeze", action="store_true", help="SIGSTOP instead of kill -9")
    faults.add_argument("--standby", action="store_true", help="a second planner waits")
    args = parser.parse_args(argv)
    kills = 1 if args.standby else args.kills
    rows = [row for _ in range(args.runs) for row in one_run(kills, args.freeze, args.standby)]
    fault = (
        "SIGSTOP" if args.freeze else "kill -9" + (" of the active planner" if args.standby else "")
    )
    print(f"{len(rows)} restarts after {fault} ({args.runs} runs x {kills}), seconds:")
    keys = ("start_to_first_log_line", "start_to_rebuilt", "kill_to_next_trial")
    print(
        table(
            ["", "median", "min", "max"],
            [
                [
                    key.replace("_", " "),
                    *(f"{f([r[key] for r in rows]):.2f}" for f in (statistics.median, min, max)),
                ]
                for key in keys
            ],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
