"""`python -m tunefleet_publisher`: consume study requests, publish their trials."""

from __future__ import annotations

from tunefleet.service import on_shutdown, start_service
from tunefleet.settings import PublisherSettings

from tunefleet_publisher.publisher import Publisher


def main() -> None:
    publisher = Publisher(start_service("publisher", PublisherSettings))
    on_shutdown(publisher.stop)
    publisher.run()


if __name__ == "__main__":
    main()
