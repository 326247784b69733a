"""`python -m tunefleet_worker`: train and cross-validate trials from the queue."""

from __future__ import annotations

from tunefleet.service import on_shutdown, start_service
from tunefleet.settings import WorkerSettings

from tunefleet_worker.training import warm_up
from tunefleet_worker.worker import Worker


def main() -> None:
    worker = Worker(start_service("worker", WorkerSettings))
    on_shutdown(worker.stop)
    warm_up()
    worker.run()


if __name__ == "__main__":
    main()
