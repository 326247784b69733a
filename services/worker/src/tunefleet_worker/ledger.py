"""What each trial cost its worker, in core-seconds, for the cost ledger (docs/usage.md, Cost).

A trial's core-seconds are the wall seconds the worker spent on it times the cores the worker
held for it. Wall time times cores, not the process's CPU time: the node is paid for by the
core and the second whether a core is busy or waiting (on memory, on a library's
single-threaded phase, on the store), and a worker runs one trial at a time on the cores its
pod requests (`TUNEFLEET_WORKER_THREADS`), or on more where a trial asks for more threads.
The seconds are those between the end of the worker's previous results and these, so that
loading the dataset and building the folds count too, and the sum over a message's trials is
what the message took. A family scored from the same fits shares them equally.

A trial taken up after a preemption also carries what earlier deliveries spent on it that it
used (`carried_seconds`): the fit and score seconds of the folds it took from fold
checkpoints, and the fit seconds of a fold it continued from a round checkpoint, on the same
cores. Those seconds were paid for once, and are not wasted (`tunefleet.cost.wasted_seconds`
leaves them out of the abandoned deliveries' waste): so a study's ledger counts them here.
"""

from __future__ import annotations

from collections.abc import Sequence

from tunefleet_contract.cost import Pool
from tunefleet_contract.messages import TrialResult, TrialSpec
from tunefleet_contract.params import THREAD_PARAM

from tunefleet_worker.training import Resumed, RoundsResumed

__all__ = ["carried_seconds", "charged", "cores_for"]


def cores_for(trial: TrialSpec, worker_threads: int) -> int:
    """The cores a trial holds: the worker's, or the trial's own thread count where higher."""
    threads = trial.params.get(THREAD_PARAM.get(trial.library, ""))
    own = threads if isinstance(threads, int) and not isinstance(threads, bool) else 0
    return max(worker_threads, own)


def carried_seconds(
    results: Sequence[TrialResult], resumed: Resumed, rounds: RoundsResumed, folds: int
) -> list[float]:
    """Per result (the members of one family, or one trial), the seconds earlier deliveries
    spent on what it took: the folds every one of them had a checkpoint of (`run_folds` takes
    only those), and, where a fold continued from a round checkpoint, that fit's seconds up to
    the cut, shared equally (a family's fit is one)."""
    ids = [r.trial_id for r in results]
    taken = [i for i in range(folds) if ids and all(i in resumed.get(t, {}) for t in ids)]
    own = [sum(resumed[t][i].fit_time_s + resumed[t][i].score_time_s for i in taken) for t in ids]
    continued = any(r.resumed_at_round for r in results)
    cut = sum(
        saved.fit_time_s
        for t in ids
        for i, saved in rounds.get(t, {}).items()
        if continued and i not in taken
    )
    return [seconds + cut / len(ids) for seconds in own]


def charged(
    results: Sequence[TrialResult],
    seconds: float,
    cores: int,
    pool: Pool,
    carried: Sequence[float] = (),
) -> list[TrialResult]:
    """`results`, each with its equal share of `seconds` on `cores` cores, on `pool`, plus
    what it carries from earlier deliveries (`carried_seconds`, in order) on as many cores."""
    if not results:
        return []
    share = max(0.0, seconds) * cores / len(results)
    extra = list(carried) or [0.0] * len(results)
    return [
        r.model_copy(update={"core_s": share + max(0.0, before) * cores, "pool": pool})
        for r, before in zip(results, extra, strict=True)
    ]
