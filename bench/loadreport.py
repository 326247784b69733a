"""`python -m bench.loadreport FILE`: a locust run's JSON report as a docs section."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.common import table, write_section


def main(path: str, name: str = "loadtest") -> None:
    report = json.loads(Path(path).read_text())
    latency, publish = report["latency_ms"], report["publish_batch_ms"]
    cpu = report["cpu_s"]
    seconds = report["seconds"]
    rows = [
        ["results offered by the users, per s", f"{report['offered_per_s']:.0f}"],
        ["results stored by the collector, per s", f"{report['stored_per_s']:.0f}"],
        ["results published / stored", f"{report['published']:,} / {report['stored']:,}"],
        [
            "event -> stored document latency, ms (p50 / p95 / p99)",
            f"{latency['p50']:.0f} / {latency['p95']:.0f} / {latency['p99']:.0f}",
        ],
        [
            "one user's batch publish, confirmed, ms (p50 / p95 / p99)",
            f"{publish['p50']:.0f} / {publish['p95']:.0f} / {publish['p99']:.0f}",
        ],
        [
            "study requests submitted / studies stored",
            f"{report['studies_submitted']} / {report['studies_stored']}",
        ],
    ]
    cpu_rows = [
        [name, f"{value:.1f}", f"{100 * value / seconds:.0f}%"] for name, value in cpu.items()
    ]
    body = f"""
`make load`: {report["users"]} locust users for {seconds:.0f} s on this machine (the load
generator shares its 2 cores with the broker, the collector and the store). Each
`WorkerStandIn` publishes confirmed `TrialResult` events as workers do; one `Submitter` sends a
small study request every few seconds through the real publisher.

{table(["", "measured"], rows)}

CPU seconds over the run (and as a share of one core):

{table(["process", "CPU s", "of one core"], cpu_rows)}
"""
    title = f"Load test: one broker and one collector, {report['users']} users (locust)"
    write_section(name, title, body, command=report.get("command"))


if __name__ == "__main__":
    main(*sys.argv[1:3])
