"""What each trial cost its worker, in core-seconds, for the cost ledger (docs/usage.md, Cost).

A trial's core-seconds are the wall seconds the worker spent on it times the cores the worker
held for it. Wall time times cores, not the process's CPU time: the node is paid for by the
core and the second whether a core is busy or waiting (on memory, on a library's
single-threaded phase, on the store), and a worker runs one trial at a time on the cores its
pod requests (`TUNEFLEET_WORKER_THREADS`), or on more where a trial asks for more threads.
The seconds are those between the end of the worker's previous results and these, so that
loading the dataset and building the folds count too, and the sum over a message's trials is
what the message took. A family scored from the same fits shares them equally.
"""

from __future__ import annotations

from collections.abc import Sequence

from tunefleet_contract.cost import Pool
from tunefleet_contract.messages import TrialResult, TrialSpec
from tunefleet_contract.params import THREAD_PARAM

__all__ = ["charged", "cores_for"]


def cores_for(trial: TrialSpec, worker_threads: int) -> int:
    """The cores a trial holds: the worker's, or the trial's own thread count where higher."""
    threads = trial.params.get(THREAD_PARAM.get(trial.library, ""))
    own = threads if isinstance(threads, int) and not isinstance(threads, bool) else 0
    return max(worker_threads, own)


def charged(
    results: Sequence[TrialResult], seconds: float, cores: int, pool: Pool
) -> list[TrialResult]:
    """`results`, each with its equal share of `seconds` on `cores` cores, on `pool`."""
    if not results:
        return []
    share = max(0.0, seconds) * cores / len(results)
    return [r.model_copy(update={"core_s": share, "pool": pool}) for r in results]
