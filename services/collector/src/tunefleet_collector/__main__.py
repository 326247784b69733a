"""`python -m tunefleet_collector`: store every event in MongoDB, exactly once."""

from __future__ import annotations

from tunefleet_runtime.service import on_shutdown, start_service
from tunefleet_runtime.settings import CollectorSettings

from tunefleet_collector.collector import Collector


def main() -> None:
    collector = Collector(start_service("collector", CollectorSettings))
    on_shutdown(collector.stop)
    collector.run()


if __name__ == "__main__":
    main()
