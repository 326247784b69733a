"""`python -m tunefleet_worker`: train and cross-validate trials from the queue."""

from __future__ import annotations

import signal
from types import FrameType


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    # Preempted while still importing (a second or more): nothing is in hand yet, so that is a
    # clean exit too. `on_shutdown` takes over once the worker exists.
    signal.signal(signal.SIGTERM, _exit_cleanly)

    from tunefleet_runtime.service import on_shutdown, start_service
    from tunefleet_runtime.settings import WorkerSettings

    from tunefleet_worker.podcost import DeletionCost
    from tunefleet_worker.training import warm_up
    from tunefleet_worker.worker import Worker

    settings = start_service("worker", WorkerSettings)
    worker = Worker(settings)
    on_shutdown(worker.stop)
    # On Kubernetes with a token for it: scale-down takes idle workers first.
    cost = DeletionCost.in_cluster(settings.tunefleet_worker_name, lambda: worker.busy)
    if cost is not None:
        cost.start()
    warm_up()
    worker.run()


if __name__ == "__main__":
    main()
