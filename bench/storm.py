"""A preemption storm at issue 21's scale, tunefleet's checkpoint settings side by side with
Ray Tune's `FailureConfig` on the same trials:

    uv run --group peers python -m bench.storm [--sides none,folds,rounds,ray] [--reps N]
        [--trials 6] [--workers 2] [--rounds 5000] [--samples 20000] [--every 20:60]
        [--grace 30] [--quick]

(`python -m bench preemption-storm [--reps N] [--quick]` runs every side at the defaults.)

A study of long XGBoost trials (one core each; 5,000 rounds on 16,000 rows per fold, 5 folds:
about 50 s of training per trial on an idle core of this machine, 60 to 150 s under its usual
load; `--rounds 8000` for a minute and more on an idle core) runs on `workers` worker processes, one
core each. Each worker gets SIGTERM a random `every` seconds after it took its first trial,
has `grace` seconds (SIGKILL after them, as Kubernetes does), and is replaced as soon as it
exited, for the whole study. A side is a value of the study's checkpoint setting:

- `none`: no checkpoint is kept (`TUNEFLEET_CHECKPOINT_MIN_S` above any fold): a handed-back
  trial starts again from its first fold (what a preemption cost before issue 21);
- `folds`: fold checkpoints (the default);
- `rounds`: round checkpoints on notice (`checkpoint: rounds` in the spec): refused, with the
  spec's own error, where the spec does not accept it yet;
- `ray`: Ray Tune (`bench.storm_ray`): the same trials as a function trainable that
  checkpoints itself every `ray_every` rounds and at each fold's end, under
  `FailureConfig(max_failures=-1)`, 1 CPU per trial, `workers` at a time; the storm SIGTERMs
  the trial's actor process (its pid from the trainable's own log, checked to be a `ray::`
  process) on the same schedule, SIGKILL after the grace.

Wasted: for tunefleet `tunefleet.cost.wasted_seconds` with each worker's exit time (what the
handed-back deliveries ran, less the folds they checkpointed); for Ray the same from the
trainable's log: each attempt that did not finish ran from its start to its process's exit,
less the training its last checkpoint kept.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
from tunefleet_contract.rules import SpecError
from tunefleet_runtime.deadletters import list_dead_letters
from tunefleet_runtime.store.documents import fold_record, trial_start
from tunefleet_runtime.store.mongo import connect_store
from tunefleet_runtime.validation import parse_spec

from bench import common
from bench.common import (
    Spread,
    last_stored_at,
    pipeline,
    save_json,
    services_up,
    table,
    wait_ready,
    write_section,
)

FOLDS = 5
# The worker's own grace (TUNEFLEET_GRACE_PERIOD_S) is this much shorter than the storm's, so
# that its hand-back is done before the SIGKILL (as a pod's terminationGracePeriodSeconds
# must exceed it, k8s/base/config/worker.env).
HAND_BACK_S = 2.0


@dataclass(frozen=True)
class Side:
    label: str
    env: dict[str, str] = field(default_factory=dict)  # the workers' settings
    spec: dict[str, Any] = field(default_factory=dict)  # added to the study's spec


SIDES: dict[str, Side] = {
    "none": Side("no checkpoints", env={"TUNEFLEET_CHECKPOINT_MIN_S": "3600"}),
    "folds": Side("fold checkpoints", env={"TUNEFLEET_CHECKPOINT_MIN_S": "0"}),
    # Round checkpoints: the spec's setting (issue 21), once the spec takes it.
    "rounds": Side(
        "round checkpoints", env={"TUNEFLEET_CHECKPOINT_MIN_S": "0"}, spec={"checkpoint": "rounds"}
    ),
    "ray": Side("Ray Tune, FailureConfig"),
}


@dataclass(frozen=True)
class Scale:
    trials: int = 4
    workers: int = 2
    rounds: int = 5000  # per fold
    samples: int = 20_000
    every_s: tuple[float, float] = (20.0, 60.0)
    grace_s: float = 30.0
    ray_every: int = 1000  # rounds between the Ray trainable's checkpoints
    timeout_s: float = 3600.0


QUICK = Scale(trials=4, rounds=100, every_s=(6.0, 15.0), grace_s=3.0, ray_every=50, timeout_s=300)


def spec(scale: Scale, side: str) -> dict[str, Any]:
    """The study: `trials` XGBoost trials (learning rates 0.01, 0.02, ...), one per message."""
    return {
        "name": "storm",
        "dataset": {
            "kind": "make_classification",
            "n_samples": scale.samples,
            "n_features": 20,
            "n_informative": 10,
            "seed": 0,
        },
        "metric": "roc_auc",
        "cv": {"folds": FOLDS, "seed": 0},
        "chunk_size": 1,
        "search": {
            "xgboost": {
                "fixed": {"n_estimators": scale.rounds, "max_depth": 6, "subsample": 0.8},
                "grid": {"learning_rate": [round(0.01 * (i + 1), 2) for i in range(scale.trials)]},
            }
        },
        **SIDES[side].spec,
    }


def check_sides(sides: list[str], scale: Scale) -> None:
    """Every side named exists, and the spec takes its checkpoint setting; else a clear error."""
    unknown = [s for s in sides if s not in SIDES]
    if unknown:
        raise SystemExit(f"unknown side {', '.join(unknown)}; choose from {', '.join(SIDES)}")
    for side in sides:
        try:
            parse_spec(spec(scale, side))
        except SpecError as exc:
            raise SystemExit(
                f"side {side!r}: the study spec does not accept {SIDES[side].spec} ({exc}); "
                "round checkpoints are not in this checkout yet"
            ) from None


@dataclass(frozen=True)
class Outcome:
    side: str
    wall_s: float  # submit (Ray: Tuner.fit) to the last result
    work_s: float  # the results' fit and score seconds: what each trial needs once
    wasted_s: float
    notices: int  # SIGTERMs sent
    kills: int  # SIGKILLs after the grace
    preemptions: int  # deliveries handed back (Ray: trial restarts)
    resumed: int  # folds taken from checkpoints (Ray: restores from a checkpoint)
    finished: int
    lost: int
    duplicated: int
    dead_letters: int = 0
    trial_fit_s: float = 0.0  # the median trial's fit seconds
    timed_out: bool = False  # cut at `Scale.timeout_s` with trials unfinished
    command: str = ""  # the command line of the run

    @property
    def share(self) -> float:
        spent = self.wasted_s + self.work_s
        return self.wasted_s / spent if spent else 0.0


class Notices:
    """The storm's schedule: a notice `every_s` after a process took its first trial, SIGKILL
    `grace_s` after the notice if it is still there, the exit time of each process noticed."""

    def __init__(self, scale: Scale, seed: int) -> None:
        self.rng = random.Random(seed)
        self.scale = scale
        self.due: dict[int, float] = {}  # pid -> when its notice comes
        self.noticed: dict[int, float] = {}  # pid -> when it got SIGTERM
        self.exited: dict[int, float] = {}  # pid -> when it was seen gone
        self.kills = 0

    def took_trial(self, pid: int) -> None:
        if pid not in self.due:
            self.due[pid] = time.time() + self.rng.uniform(*self.scale.every_s)

    def tick(self, alive: Any) -> list[int]:
        """Send what is due (`alive(pid)`: still running); the pids that exited since."""
        now, gone = time.time(), []
        for pid, due in self.due.items():
            if pid in self.exited:
                continue
            if not alive(pid):
                if pid in self.noticed:
                    self.exited[pid] = now
                    gone.append(pid)
                continue
            if pid not in self.noticed and now >= due:
                os.kill(pid, signal.SIGTERM)
                self.noticed[pid] = now
            elif pid in self.noticed and now >= self.noticed[pid] + self.scale.grace_s:
                os.kill(pid, signal.SIGKILL)
                self.kills += 1
                self.noticed[pid] = float("inf")  # one SIGKILL
        return gone


def _tunefleet(services: Any, side: str, scale: Scale, seed: int) -> Outcome:
    notices = Notices(scale, seed)
    env = {
        "TUNEFLEET_WORKER_THREADS": "1",
        "TUNEFLEET_GRACE_PERIOD_S": str(max(0.0, scale.grace_s - HAND_BACK_S)),
        **SIDES[side].env,
    }
    with pipeline(services, workers=0, env=env) as run:
        db = connect_store(run.settings)
        workers: dict[int, tuple[int, str, Any]] = {}  # pid -> slot, name, process
        count = 0

        def spawn(slot: int) -> None:
            nonlocal count
            count += 1
            proc = run.pipeline.start("worker", f"storm-{count}")
            workers[proc.pid] = slot, f"storm-{count}", proc

        def alive(pid: int) -> bool:
            return bool(workers[pid][2].poll() is None)

        for slot in range(scale.workers):
            spawn(slot)
        wait_ready(run, workers=scale.workers, start=("collector", "publisher"))
        started = time.time()
        study = str(run.client.submit(spec(scale, side)))
        timed_out = False
        while db.trials.count_documents({"study_id": study}) < scale.trials:
            if time.time() - started > scale.timeout_s:
                timed_out = True  # reported as such: the storm kept trials from finishing
                break
            for pid, (_, name, proc) in list(workers.items()):
                if pid not in notices.due and db.starts.find_one({"worker": name}):
                    notices.took_trial(pid)
                if proc.poll() is not None and pid not in notices.noticed:
                    raise RuntimeError(f"{name} exited ({proc.returncode}) without a notice")
            for pid in notices.tick(alive):
                spawn(workers[pid][0])  # replaced once it exited
            time.sleep(0.2)
        ended = time.time()
        docs = list(db.trials.find({"study_id": study}))
        wall = ended - started if timed_out else last_stored_at(docs) - started
        results = run.client.trials(study)
        record = run.client.study_record(study)
        stopped_at = {workers[pid][1]: at for pid, at in notices.exited.items()}
        wasted = sum(run.client.wasted(record, results, stopped_at=stopped_at).values())
        work = sum((r.fit_time_s or 0.0) + (r.score_time_s or 0.0) for r in results)
        if timed_out:
            lost, kept = _unfinished(db, study, {r.trial_id for r in results}, stopped_at)
            wasted, work = wasted + lost, work + kept
        planned = set(run.client.store.planned_trials(study, 0))
        ids = [d["_id"] for d in docs]
        return Outcome(
            side=side,
            wall_s=wall,
            work_s=work,
            wasted_s=wasted,
            notices=len(notices.noticed),
            kills=notices.kills,
            preemptions=sum(max(0, r.attempts - 1) for r in results),
            resumed=sum(r.resumed_folds or 0 for r in results),
            finished=sum(1 for r in results if r.status == "done"),
            lost=len(planned - set(ids)),
            duplicated=len(ids) - len(set(ids)),
            dead_letters=len(list_dead_letters(run.settings, limit=None)),
            trial_fit_s=statistics.median(r.fit_time_s or 0.0 for r in results) if results else 0.0,
            timed_out=timed_out,
        )


def _unfinished(
    db: Any, study: str, finished: set[str], stopped_at: dict[str, float]
) -> tuple[float, float]:
    """For the trials that have no result at the cut: what their ended deliveries ran less the
    folds they checkpointed (the deliveries still running count nowhere), and the seconds of
    the folds checkpointed (the progress kept)."""
    starts = [trial_start(d) for d in db.starts.find({"study_id": study})]
    folds = [fold_record(d) for d in db.folds.find({"study_id": study})]
    wasted = 0.0
    for s in starts:
        end = stopped_at.get(s.worker)
        if s.trial_id in finished or end is None:
            continue
        kept = sum(
            f.fit_time_s + f.score_time_s
            for f in folds
            if f.trial_id == s.trial_id and f.worker == s.worker and s.started_at <= f.finished_at
        )
        wasted += max(0.0, end - s.started_at - kept)
    progress = {
        (f.trial_id, f.fold): f.fit_time_s + f.score_time_s
        for f in folds
        if f.trial_id not in finished
    }
    return wasted, sum(progress.values())


def _ray(side: str, scale: Scale, seed: int) -> Outcome:
    """Ray Tune's driver in a process of its own (`bench.storm_ray`); the storm from here, on
    the trial actors' pids the trainable logs."""
    notices = Notices(scale, seed)
    with tempfile.TemporaryDirectory(prefix="tunefleet-bench-storm-ray-") as tmp:
        log, out = Path(tmp) / "trainable.jsonl", Path(tmp) / "result.json"
        config = {"spec": spec(scale, "folds"), "scale": asdict(scale), "log": str(log)}
        driver = subprocess.Popen(
            [sys.executable, "-m", "bench.storm_ray", json.dumps(config), str(out)],
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            stdout=subprocess.DEVNULL,
            stderr=(Path(tmp) / "driver.log").open("wb"),
        )
        seen, started = 0, time.time()
        while driver.poll() is None:
            if time.time() - started > scale.timeout_s:
                driver.terminate()  # Ray's driver takes its raylet and workers down with it
                driver.wait(120)
                break
            events = _events(log)
            for event in events[seen:]:
                if event["event"] == "start" and _is_ray(int(event["pid"])):
                    notices.took_trial(int(event["pid"]))
            seen = len(events)
            notices.tick(psutil.pid_exists)
            time.sleep(0.2)
        cut = time.time() - started > scale.timeout_s
        if not cut and (driver.returncode != 0 or not out.exists()):
            tail = (Path(tmp) / "driver.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"ray driver failed ({driver.returncode}): {tail}")
        notices.tick(psutil.pid_exists)
        events = _events(log)
        if cut:  # what finished, from the trainable's own log
            done = {e["trial"] for e in events if e["event"] == "done"}
            result = {"wall_s": time.time() - started, "finished": len(done)}
            return replace(ray_outcome(side, events, notices, result, scale.trials), timed_out=True)
        return ray_outcome(side, events, notices, json.loads(out.read_text()), scale.trials)


def _events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    lines = log.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def _is_ray(pid: int) -> bool:
    try:
        return psutil.Process(pid).cmdline()[0].startswith("ray::")
    except (psutil.Error, IndexError):
        return False


def ray_outcome(
    side: str,
    events: list[dict[str, Any]],
    notices: Notices,
    result: dict[str, Any],
    trials: int,
) -> Outcome:
    """What the trainable's log tells: per attempt (a pid and a trial) its start, the training
    its checkpoints kept, whether it finished; an attempt that did not finish ran until its
    process exited (the storm's record) or, failing that, until the trial's next attempt."""
    attempts: dict[tuple[int, int], dict[str, Any]] = {}
    order: list[tuple[int, int]] = []
    for e in events:
        key = (int(e["trial"]), int(e["pid"]))
        if e["event"] == "start":
            attempts[key] = {"start": e["at"], "kept": 0.0, "done": False}
            attempts[key]["restored"] = bool(e["restored"])
            order.append(key)
        elif e["event"] == "checkpoint":
            attempts[key]["kept"] = float(e["attempt_work_s"])
        elif e["event"] == "done":
            attempts[key]["done"] = True
            attempts[key]["work_s"] = float(e["work_s"])
            attempts[key]["fit_s"] = float(e["fit_s"])
    wasted = 0.0
    for i, key in enumerate(order):
        a = attempts[key]
        if a["done"]:
            continue
        later = [attempts[k]["start"] for k in order[i + 1 :] if k[0] == key[0]]
        end = notices.exited.get(key[1]) or (min(later) if later else a["start"])
        wasted += max(0.0, end - a["start"] - a["kept"])
    done = [attempts[k] for k in order if attempts[k]["done"]]
    finished_trials = {k[0] for k in order if attempts[k]["done"]}
    progress = {  # the training the last checkpoint of each unfinished trial keeps
        int(e["trial"]): float(e.get("work_s", 0.0))
        for e in events
        if e["event"] == "checkpoint" and int(e["trial"]) not in finished_trials
    }
    return Outcome(
        side=side,
        wall_s=float(result["wall_s"]),
        work_s=sum(a["work_s"] for a in done) + sum(progress.values()),
        wasted_s=wasted,
        notices=len(notices.noticed),
        kills=notices.kills,
        preemptions=sum(1 for k in order if not attempts[k]["done"]),
        resumed=sum(1 for k in order if attempts[k]["restored"]),
        finished=int(result["finished"]),
        lost=trials - len(finished_trials),
        duplicated=len(done) - len(finished_trials),
        trial_fit_s=statistics.median(a["fit_s"] for a in done) if done else 0.0,
    )


def run_sides(
    sides: list[str], scale: Scale, reps: int, command: str = ""
) -> dict[str, list[Outcome]]:
    """Every side `reps` times; a side that fails is said so and left out of the table (the
    others' runs are long: they are kept)."""
    check_sides(sides, scale)
    outcomes: dict[str, list[Outcome]] = {}

    def one(side: str, measure: Any) -> None:
        for seed in range(reps):
            try:
                outcome = measure(seed)
            except Exception as exc:  # reported; the other sides go on
                print(f"{side}: failed: {exc!r}", flush=True)
                return
            outcomes.setdefault(side, []).append(replace(outcome, command=command))
            print(f"{side}: {outcome}", flush=True)
            save_json(
                "storm", {k: [asdict(o) for o in v] for k, v in {**_saved(), **outcomes}.items()}
            )

    tunefleet = [s for s in sides if s != "ray"]
    if tunefleet:
        with services_up() as services:
            for side in tunefleet:
                one(side, lambda seed, side=side: _tunefleet(services, side, scale, seed))
    if "ray" in sides:
        one("ray", lambda seed: _ray("ray", scale, seed))
    return outcomes


def report(outcomes: dict[str, list[Outcome]], scale: Scale, reps: int, command: str) -> None:
    rows = []
    outcomes = {s: outcomes[s] for s in SIDES if s in outcomes}
    for side, runs in outcomes.items():
        wasted = Spread.of([r.wasted_s for r in runs])
        share = Spread.of([r.share for r in runs])
        rows.append(
            [
                SIDES[side].label,
                "/".join(
                    f"{r.notices}" + (f" ({r.kills} SIGKILL)" if r.kills else "") for r in runs
                ),
                "/".join(str(r.preemptions) for r in runs),
                "/".join(str(r.resumed) for r in runs),
                "/".join(
                    f"{r.finished} of {r.finished + r.lost} (cut), -, {r.duplicated}"
                    if r.timed_out
                    else f"{r.finished}, {r.lost}, {r.duplicated}"
                    for r in runs
                ),
                wasted.fmt(1, " s") if len(runs) > 1 else f"{wasted.median:.1f} s",
                f"{share.median:.1%}"
                + (f" ({min(share.values):.1%}..{max(share.values):.1%})" if len(runs) > 1 else ""),
                "/".join(f"> {r.wall_s:.0f} s" for r in runs)
                if any(r.timed_out for r in runs)
                else Spread.of([r.wall_s for r in runs]).fmt(1, " s")
                if len(runs) > 1
                else f"{runs[0].wall_s:.1f} s",
                f"{statistics.median(r.trial_fit_s for r in runs):.1f} s"
                if all(r.trial_fit_s for r in runs)
                else "-",
            ]
        )
    base = outcomes.get("none")
    ratios = ""
    if base:
        b_wasted = statistics.median(r.wasted_s for r in base)
        b_wall = statistics.median(r.wall_s for r in base)
        ratios = (
            "\n\nRatio of the medians to no checkpoints: "
            + "; ".join(
                f"{SIDES[s].label}: wasted "
                f"{statistics.median(r.wasted_s for r in runs) / b_wasted:.2f}, wall "
                f"{statistics.median(r.wall_s for r in runs) / b_wall:.2f}"
                for s, runs in outcomes.items()
                if s != "none" and b_wasted > 0
            )
            + "."
        )
    runs_said = "one run per side" if reps == 1 else f"median (min..max) of {reps} runs"
    body = (
        f"A study of {scale.trials} XGBoost trials (make_classification, {scale.samples:,} rows "
        f"x 20, roc_auc, {FOLDS} folds, {scale.rounds:,} rounds per fold, depth 6, subsample "
        f"0.8, learning rates 0.01..{0.01 * scale.trials:.2f}; one trial per message) on "
        f"{scale.workers} worker processes of one core each. Each worker gets SIGTERM a random "
        f"{scale.every_s[0]:.0f} to {scale.every_s[1]:.0f} s after it took its first trial, has "
        f"{scale.grace_s:.0f} s of grace (its own TUNEFLEET_GRACE_PERIOD_S {HAND_BACK_S:.0f} s "
        "shorter, for the hand-back), SIGKILL after it, and is replaced as soon as it exited, "
        "for the whole study. No checkpoints: `TUNEFLEET_CHECKPOINT_MIN_S` above any fold, a "
        "handed-back trial starts again from its first fold; fold checkpoints: the default. "
        "Ray Tune: the same trials (the same data, folds, parameters and scorer, from the "
        "worker's own loaders) as a function trainable that reports a checkpoint (the booster "
        f"in XGBoost's format and the finished folds' scores) every {scale.ray_every:,} rounds "
        "and at each fold's end and restores from `tune.get_checkpoint()`, under "
        "`FailureConfig(max_failures=-1)`, `ray.init(num_cpus="
        f"{scale.workers})`, 1 CPU per trial; the storm SIGTERMs the trial's actor process "
        "(its pid from the trainable's log, checked to be a `ray::` process) on the same "
        "schedule, SIGKILL after the grace; Ray restarts the trial from its last checkpoint.\n\n"
        "Wasted: tunefleet's `tunefleet.cost.wasted_seconds` with each worker's exit time "
        "(what the handed-back deliveries ran, less the folds they checkpointed); Ray's from "
        "the trainable's log, the same way: each attempt that did not finish ran from its start "
        "to its process's exit, less the training its last checkpoint kept. Share: wasted / "
        "(wasted + the results' fit and score seconds). Wall: submit (Ray: `Tuner.fit`) to the "
        f"last result. {runs_said}, the same notice seeds for every side; notices, hand-backs "
        "(Ray: failed attempts), resumes (folds taken from checkpoints; Ray: attempts restored "
        "from a checkpoint) and finished, lost, duplicated trials per run; a trial's fit "
        "seconds (median).\n\n"
        + (
            f"A side cut at the time limit ({scale.timeout_s:.0f} s) with trials unfinished "
            "shows what it finished (`k of n (cut)`); its wasted seconds add the ended "
            "deliveries of the unfinished trials (those running at the cut count nowhere): a "
            "lower bound.\n\n"
            if any(r.timed_out for runs in outcomes.values() for r in runs)
            else ""
        )
        + table(
            [
                "side",
                "notices",
                "hand-backs",
                "resumed",
                "finished, lost, duplicated",
                "wasted",
                "wasted share",
                "wall",
                "trial fit",
            ],
            rows,
        )
        + ratios
        + _commands(outcomes, command)
    )
    write_section(
        "preemption-storm",
        "Preemption storm: no checkpoints, fold and round checkpoints, Ray Tune",
        body,
        command,
    )


def _commands(outcomes: dict[str, list[Outcome]], command: str) -> str:
    """Where a side's runs came from another command (`--merge`), which."""
    by: dict[str, list[str]] = {}
    for side, runs in outcomes.items():
        by.setdefault(runs[0].command or command, []).append(SIDES[side].label)
    if list(by) == [command]:
        return ""
    return "\n\nRuns: " + "; ".join(f"{', '.join(s)}: `{c}`" for c, s in by.items()) + "."


def run(reps: int, quick: bool) -> None:
    """`python -m bench preemption-storm`: every side this checkout has, at the defaults."""
    scale = QUICK if quick else Scale()
    sides = [s for s in SIDES if s != "rounds" or _accepts(scale, s)]
    report(run_sides(sides, scale, reps, common.command_line()), scale, reps, common.command_line())


def _accepts(scale: Scale, side: str) -> bool:
    try:
        parse_spec(spec(scale, side))
    except SpecError:
        return False
    return True


def _range(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(":")
    try:
        low, high = float(lo), float(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: LOW:HIGH seconds, e.g. 20:60") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 < LOW <= HIGH")
    return low, high


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--sides", default="none,folds,ray", help=", ".join(SIDES))
    parser.add_argument("--reps", type=int, default=1, help="runs per side (median, min, max)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--rounds", type=int, help="boosting rounds per fold")
    parser.add_argument("--samples", type=int, help="rows of the dataset")
    parser.add_argument("--every", type=_range, metavar="LOW:HIGH", help="notice after, s")
    parser.add_argument("--grace", type=float, help="seconds from SIGTERM to SIGKILL")
    parser.add_argument("--ray-every", type=int, help="rounds between Ray's checkpoints")
    parser.add_argument("--timeout", type=float, help="seconds a side may run before it is cut")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the last run's other sides in the table (from its saved JSON)",
    )
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else Scale()
    given = {
        "trials": args.trials,
        "workers": args.workers,
        "rounds": args.rounds,
        "samples": args.samples,
        "every_s": args.every,
        "grace_s": args.grace,
        "ray_every": args.ray_every,
        "timeout_s": args.timeout,
    }
    for name, value in given.items():
        if isinstance(value, int | float) and not isinstance(value, tuple) and value <= 0:
            parser.error(f"--{name.split('_')[0].replace('_', '-')} must be positive, not {value}")
    scale = replace(scale, **{k: v for k, v in given.items() if v is not None})
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if args.quick:
        common.REPORT = common.REPO / ".tunefleet" / "benchmarks-quick.md"
    command = "uv run --group peers python -m bench.storm " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    outcomes = run_sides(sides, scale, args.reps, command.strip())
    if args.merge:
        outcomes = {**_saved(), **outcomes}
    report(outcomes, scale, args.reps, command.strip())


def _saved() -> dict[str, list[Outcome]]:
    """The outcomes the last run saved (`save_json`), by side."""
    path = common.json_path("storm")
    if not path.exists():
        return {}
    found = json.loads(path.read_text())
    return {side: [Outcome(**o) for o in runs] for side, runs in found.items()}


if __name__ == "__main__":
    main()
