"""The preemption storm benchmark's pure parts (bench.storm): the sides' specs, the refusal of a
checkpoint setting the spec does not take, the notice schedule, and Ray Tune's wasted seconds
from the trainable's log."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
from tunefleet_runtime.validation import parse_spec

from bench import storm
from bench.storm import QUICK, Notices, Scale, check_sides, ray_outcome, spec


def test_every_side_runs_the_same_trials_at_the_issues_scale() -> None:
    scale = Scale()
    assert (scale.every_s, scale.grace_s, scale.rounds) == ((20.0, 60.0), 30.0, 5000)
    parsed = [parse_spec(spec(scale, side)) for side in ("none", "folds")]
    assert parsed[0] == parsed[1]
    assert parsed[0].n_trials() == scale.trials
    assert parsed[0].search["xgboost"].fixed["n_estimators"] == scale.rounds


def test_a_side_the_spec_does_not_take_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SystemExit, match="unknown side nope"):
        check_sides(["folds", "nope"], QUICK)
    bad = storm.Side("bad", spec={"checkpoint": "sometimes"})
    monkeypatch.setitem(storm.SIDES, "bad", bad)
    with pytest.raises(SystemExit, match=r"side 'bad'.*checkpoint"):
        check_sides(["folds", "bad"], QUICK)


def test_notices_come_within_the_interval_and_a_sigkill_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(time, "time", lambda: clock[0])
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    notices = Notices(Scale(every_s=(20.0, 60.0), grace_s=30.0), seed=0)
    notices.took_trial(7)
    assert 1020.0 <= notices.due[7] <= 1060.0
    running = {7}
    clock[0] = notices.due[7] - 0.1
    assert notices.tick(lambda pid: pid in running) == [] and sent == []
    clock[0] += 0.2
    notices.tick(lambda pid: pid in running)
    assert sent == [(7, signal.SIGTERM)]
    clock[0] += 29.0  # still in its grace
    notices.tick(lambda pid: pid in running)
    assert sent == [(7, signal.SIGTERM)] and notices.kills == 0
    clock[0] += 2.0
    notices.tick(lambda pid: pid in running)
    assert sent[-1] == (7, signal.SIGKILL) and notices.kills == 1
    running.clear()
    clock[0] += 1.0
    assert notices.tick(lambda pid: pid in running) == [7]
    assert notices.exited == {7: clock[0]}
    assert os.getpid() not in notices.due  # only the pids it was given


def _event(event: str, trial: int, pid: int, at: float, **fields: Any) -> dict[str, Any]:
    return {"event": event, "trial": trial, "pid": pid, "at": at, **fields}


def test_ray_wastes_what_an_attempt_ran_after_its_last_checkpoint() -> None:
    events = [
        _event("start", 0, 11, 100.0, restored=False),
        _event("start", 1, 12, 100.0, restored=False),
        _event("checkpoint", 0, 11, 110.0, attempt_work_s=9.0),
        _event("checkpoint", 0, 11, 120.0, attempt_work_s=18.0),
        _event("done", 1, 12, 150.0, work_s=48.0, fit_s=47.0),
        # pid 11 exits at 130 (the storm's record): 30 s ran, 18 s kept.
        _event("start", 0, 13, 135.0, restored=True),
        _event("done", 0, 13, 170.0, work_s=50.0, fit_s=49.0),
    ]
    notices = Notices(QUICK, seed=0)
    notices.noticed = {11: 125.0}
    notices.exited = {11: 130.0}
    outcome = ray_outcome("ray", events, notices, {"wall_s": 71.0, "finished": 2}, trials=2)
    assert outcome.wasted_s == pytest.approx(12.0)
    assert outcome.work_s == pytest.approx(98.0)
    assert (outcome.preemptions, outcome.resumed) == (1, 1)
    assert (outcome.finished, outcome.lost, outcome.duplicated) == (2, 0, 0)
    assert outcome.share == pytest.approx(12.0 / 110.0)


def test_ray_counts_a_trial_finished_twice_and_one_never_finished() -> None:
    events = [
        _event("start", 0, 11, 0.0, restored=False),
        _event("done", 0, 11, 10.0, work_s=10.0, fit_s=9.0),
        _event("start", 0, 12, 11.0, restored=True),
        _event("done", 0, 12, 12.0, work_s=10.0, fit_s=9.0),
        # no exit recorded: it ran until the trial's next attempt
        _event("start", 1, 13, 0.0, restored=False),
        _event("checkpoint", 1, 13, 3.5, attempt_work_s=3.0, work_s=3.0),
        _event("start", 1, 14, 8.0, restored=True),
    ]
    outcome = ray_outcome("ray", events, Notices(QUICK, 0), {"wall_s": 9, "finished": 1}, 2)
    assert (outcome.finished, outcome.lost, outcome.duplicated) == (1, 1, 1)
    assert outcome.wasted_s == pytest.approx(5.0)
    # the unfinished trial's progress its checkpoint keeps is work, not waste
    assert outcome.work_s == pytest.approx(23.0)
