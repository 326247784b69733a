"""The planner's own work, side by side with another checkout of tunefleet (the previous main):
how long it takes to plan a large grid (decide, chunk, encode), and to decide one TPE or ASHA
trial on a result. CPU only: no broker, no store, no worker.

    uv run python -m bench.planner --compare ../other-checkout [--rounds 3]

Each side runs in its own interpreter (the other checkout's `.venv`), one after the other,
`--rounds` times alternating: the same machine, the same minutes. On a shared machine other
work only ever adds time, so the best of the rounds is what is compared (as `timeit` does);
the medians are shown beside it. Times are the process's CPU time (`time.process_time`): the
planner's work is one thread's, and CPU time is what other processes on the machine disturb
least.
The script speaks both the current API and the one before the search package (where the
planner's searches were a list of strategies reacting to a `TrialResult`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

GRID = {
    "name": "grid",
    "dataset": "breast_cancer",
    "chunk_size": 6,
    "search": {
        "xgboost": {
            "grid": {
                "n_estimators": [50, 100, 200, 400],
                "max_depth": [2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
                "learning_rate": [0.01, 0.03, 0.05, 0.1, 0.2, 0.3],
                "subsample": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
                "colsample_bytree": [0.6, 0.8, 1.0],
                "min_child_weight": [1, 3, 5],
                "gamma": [0.0, 1.0],
            }
        }
    },
}
SPACE = {"learning_rate": {"loguniform": [0.001, 1.0]}, "max_depth": {"int": [2, 10]}}
TPE = {
    "name": "tpe",
    "dataset": "iris",
    "search": {
        "xgboost": {
            "fixed": {"n_estimators": 20},
            "tpe": {
                "n_trials": 100,
                "max_in_flight": 4,
                "n_startup": 10,
                "seed": 1,
                "space": SPACE,
            },
        }
    },
}
ASHA = {
    "name": "asha",
    "dataset": "iris",
    "search": {
        "xgboost": {
            "asha": {
                "n_trials": 300,
                "max_in_flight": 4,
                "min_rounds": 10,
                "max_rounds": 270,
                "eta": 3,
                "seed": 1,
                "space": SPACE,
            }
        }
    },
}


def _score(params: dict[str, Any]) -> float:
    lr, depth = float(params["learning_rate"]), int(params["max_depth"])
    rounds = int(params.get("n_estimators", 0))
    return -((math.log10(lr) + 1) ** 2) - 0.05 * (depth - 6) ** 2 + rounds / 1000


def _grid() -> dict[str, float]:
    from tunefleet_contract.messages import StudyRequest, TrialsPlanned
    from tunefleet_publisher.planner import plan
    from tunefleet_runtime.validation import parse_spec

    spec = parse_spec(GRID)
    request = StudyRequest(study_id=spec.study_id(), spec=spec, submitted_at=0.0)
    started = time.process_time()
    decided = plan(request, {}, 0)
    planned = [
        TrialsPlanned(
            study_id=request.study_id, first=first, trials=decided.trials[first : first + 1000]
        ).encode()
        for first in range(0, len(decided.trials), 1000)
    ]
    messages = [message.encode() for message in decided.messages()]
    seconds = time.process_time() - started
    assert len(decided.trials) == 25_920 and planned and messages
    return {"grid_s": seconds, "grid_trials": len(decided.trials), "messages": len(messages)}


def _react(searches: Any, trial: Any, score: float) -> list[Any]:
    if isinstance(searches, list):  # before the search package: strategies take a TrialResult
        from tunefleet_contract.messages import TrialResult

        result = TrialResult(
            study_id="s",
            trial_id=trial.trial_id,
            library=trial.library,
            params=trial.params,
            status="done",
            score=score,
            finished_at=0.0,
        )
        return [new for search in searches for new in search.react(result)]
    return list(searches.react(trial.trial_id, score))


def _adaptive(data: dict[str, Any]) -> tuple[float, int]:
    """Seconds per decision, one worker: every result decides the next trial."""
    from tunefleet_contract.messages import StudyRequest
    from tunefleet_publisher.planner import decide
    from tunefleet_runtime.validation import parse_spec

    spec = parse_spec(data)
    request = StudyRequest(study_id=spec.study_id(), spec=spec, submitted_at=0.0)
    started = time.process_time()
    trials, searches = decide(request, {})
    queue, decided = list(trials), len(trials)
    while queue:
        trial = queue.pop(0)
        new = _react(searches, trial, _score(dict(trial.params)))
        queue.extend(new)
        decided += len(new)
    return (time.process_time() - started) / decided, decided


def measure() -> dict[str, float]:
    try:  # set up as the planner's main does (Optuna's logging); before, importing did it
        from tunefleet_contract.search.plan import prepare
    except ImportError:
        pass
    else:
        prepare()
    found = _grid()
    for name, data in (("tpe", TPE), ("asha", ASHA)):
        seconds, trials = _adaptive(data)
        found[f"{name}_ms"], found[f"{name}_trials"] = seconds * 1000, trials
    return found


def best_of(runs: int) -> dict[str, float]:
    """`measure` `runs` times in this process, the fastest of each."""
    found = [measure() for _ in range(runs)]
    return {key: min(run[key] for run in found) for key in found[0]}


def _side(checkout: Path) -> dict[str, float]:
    python = checkout / ".venv" / "bin" / "python"
    out = subprocess.run(
        # -P: not this file's directory first on the path, where bench's own modules would
        # shadow the ones the other checkout imports.
        [str(python), "-P", str(Path(__file__).resolve()), "--measure", "2"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _commit(checkout: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def compare(other: Path, rounds: int) -> str:
    here = Path(__file__).resolve().parents[1]
    sides: dict[Path, list[dict[str, float]]] = {other: [], here: []}
    for _ in range(rounds):
        for checkout in sides:  # alternating, so that load drifts hit both alike
            sides[checkout].append(_side(checkout))
    rows = [
        ("plan a 25,920-trial grid (decide, chunk, encode), CPU s", "grid_s", "{:.2f}"),
        ("TPE, per decision (100 trials, one worker), CPU ms", "tpe_ms", "{:.1f}"),
        ("ASHA, per decision (300 trials, one worker), CPU ms", "asha_ms", "{:.2f}"),
    ]
    names = {other: f"before ({_commit(other)})", here: f"this ({_commit(here)})"}
    lines = [
        f"| {'measure (best of the rounds; median)':<52} | {names[other]} | {names[here]} "
        "| ratio |",
        f"| {'-' * 52} | --- | --- | --- |",
    ]
    for label, key, fmt in rows:
        before = [r[key] for r in sides[other]]
        after = [r[key] for r in sides[here]]
        lines.append(
            f"| {label:<52} | {fmt.format(min(before))} ({fmt.format(statistics.median(before))})"
            f" | {fmt.format(min(after))} ({fmt.format(statistics.median(after))})"
            f" | {min(after) / min(before):.2f} |"
        )
    same = all(
        sides[other][0][k] == sides[here][0][k]
        for k in ("grid_trials", "tpe_trials", "asha_trials")
    )
    lines.append("")
    lines.append(
        f"Same trial counts on both sides: {same}. {rounds} rounds, each the best of 2 runs."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.planner", description=__doc__)
    parser.add_argument("--compare", type=Path, help="another checkout, with its .venv")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(best_of(args.measure)))
        return
    if args.compare is None:
        print(json.dumps(measure(), indent=1))
        return
    print(compare(args.compare.resolve(), args.rounds))


if __name__ == "__main__":
    main()
