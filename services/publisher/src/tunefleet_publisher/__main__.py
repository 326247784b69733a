"""`python -m tunefleet_publisher`: consume study requests, publish their trials."""

from __future__ import annotations

from tunefleet_contract.search.plan import prepare
from tunefleet_runtime.service import on_shutdown, start_service
from tunefleet_runtime.settings import PublisherSettings
from tunefleet_runtime.validation import warm_up

from tunefleet_publisher.publisher import Publisher


def main() -> None:
    publisher = Publisher(start_service("publisher", PublisherSettings))
    # The planner validates every spec (metric names come from scikit-learn) and decides with
    # the search kinds' libraries (Optuna): load them before the first request, not while it
    # waits.
    warm_up()
    prepare()
    on_shutdown(publisher.stop)
    publisher.run()


if __name__ == "__main__":
    main()
