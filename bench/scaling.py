"""`python -m bench.scaling LOAD_REPORT`: the scale model of docs/scaling.md, from measurements.

Reads the overhead benchmark's medians (docs/.benchmarks-overhead.json, written by
`python -m bench overhead`) and a saturating locust run's report, and rewrites the two
generated parts of docs/scaling.md with the arithmetic shown.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from bench.common import REPO, REPORT, table

SCALING = REPO / "docs" / "scaling.md"
DURATIONS = (1.0, 10.0, 60.0)
TARGET_CORES = 500
SHARED = ("rabbitmq", "collector", "mongodb")


def _replace(text: str, name: str, body: str) -> str:
    start, end = f"<!-- scaling:{name}:start -->", f"<!-- scaling:{name}:end -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    return pattern.sub(lambda _: f"{start}\n{body.strip()}\n{end}", text)


def _case(overhead: list[dict[str, Any]], chunk: int, workers: int | None = None) -> dict[str, Any]:
    for case in overhead:
        if case["chunk_size"] == chunk and (workers is None or case["workers"] == workers):
            return case
    raise KeyError(f"no overhead measurement with chunk_size {chunk}")


def main(load_report: str, *other_reports: str) -> None:
    """`load_report` is the saturating run; `other_reports` (lighter runs) add their rows."""
    overhead: list[dict[str, Any]] = json.loads(
        (REPORT.parent / f".{REPORT.stem}-overhead.json").read_text()
    )
    load = json.loads(Path(load_report).read_text())
    chunked = _case(overhead, 100)
    single = max(
        (c for c in overhead if c["chunk_size"] == 1), key=lambda c: float(c["trials_per_s"])
    )
    stored = max(1, int(load["stored"]))
    load_cpu = {k: 1000 * float(v) / stored for k, v in load["cpu_s"].items() if k in SHARED}

    rows = [
        [
            "no-op pipeline, chunk_size 100 (benchmark 2)",
            f"{chunked['trials_per_s']:,.0f} trials/s",
            "everything on the 2 shared cores",
        ],
        [
            f"no-op pipeline, chunk_size 1, {single['workers']} workers (benchmark 2)",
            f"{single['trials_per_s']:,.0f} trials/s",
            "everything on the 2 shared cores",
        ],
    ]
    for report in [json.loads(Path(p).read_text()) for p in other_reports] + [load]:
        rows.append(
            [
                f"locust, {report['users']} users offering {report['offered_per_s']:,.0f} "
                "results/s",
                f"{report['stored_per_s']:,.0f} results/s stored",
                f"event -> stored p50/p95/p99 {report['latency_ms']['p50']:,.0f} / "
                f"{report['latency_ms']['p95']:,.0f} / {report['latency_ms']['p99']:,.0f} ms",
            ]
        )
    cpu_rows = []
    per_core: dict[str, float] = {}
    for name in SHARED:
        ms = float(chunked["cpu_ms_per_trial"][name])
        per_core[name] = 1000 / ms if ms > 0 else float("inf")
        cpu_rows.append(
            [
                name,
                f"{ms:.3f}",
                f"{float(single['cpu_ms_per_trial'][name]):.3f}",
                f"{load_cpu.get(name, float('nan')):.3f}",
                f"1000 / {ms:.3f} = {per_core[name]:,.0f}",
            ]
        )
    bottleneck = min(per_core, key=lambda k: per_core[k])
    capacities = f"""
Measured rates (medians; the benchmarks' own sections give min..max, commands and load):

{table(["measurement", "rate", "note"], rows)}

CPU milliseconds per trial of each shared component (user + system CPU over a run / trials),
and what one dedicated core of this VM would therefore sustain at chunk_size 100:

{
        table(
            [
                "component",
                "ms/trial, chunk 100",
                "ms/trial, chunk 1",
                "ms/result, locust",
                "trials/s per core, chunk 100",
            ],
            cpu_rows,
        )
    }

The locust column counts results only (no trial messages, no starts), so it is lower.
At the saturating load test the store used {load["cpu_s"].get("mongodb", 0):.1f} CPU s,
the broker {load["cpu_s"].get("rabbitmq", 0):.1f} and the collector
{load["cpu_s"].get("collector", 0):.1f} in {load["seconds"]:.0f} s of load.
"""
    r_vm = float(chunked["trials_per_s"])
    r_vm1 = float(single["trials_per_s"])
    r_core = per_core[bottleneck]
    model_rows = []
    for d in DURATIONS:
        need = TARGET_CORES / d
        model_rows.append(
            [
                f"{d:g} s",
                f"{TARGET_CORES} / {d:g} = {need:,.0f}",
                f"{r_vm:,.0f} x {d:g} = {r_vm * d:,.0f}",
                f"{r_vm1:,.0f} x {d:g} = {r_vm1 * d:,.0f}",
                f"{r_core:,.0f} x {d:g} = {r_core * d:,.0f}",
            ]
        )
    short = TARGET_CORES / r_vm
    model = f"""
Three readings of `R_max`:

- **this VM, chunked**: measured with everything (broker, collector, store and the workers
  themselves) on the 2 shared cores, chunk_size 100: `R_max` = {r_vm:,.0f} trials/s;
- **this VM, chunk_size 1**: the same with one trial per message: {r_vm1:,.0f} trials/s;
- **one core each**: broker, collector and store limited to one core each of this VM's
  speed, so the most expensive per trial decides: the {bottleneck}, {r_core:,.0f} trials/s
  (on the VM the store spread over both cores, hence the higher measured rate).

{
        table(
            [
                "trial length d",
                "results/s from 500 cores",
                "W_max, this VM chunked",
                "W_max, this VM chunk_size 1",
                "W_max, one core each",
            ],
            model_rows,
        )
    }

**500 cores.** They need `500 / d` results per second. With trials of 1 s or longer that is
at most 500/s, which even the 2-core VM running everything absorbs with chunking
({r_vm:,.0f}/s); with `chunk_size: 1` and 1 s trials it is {"within" if r_vm1 >= 500 else "beyond"}
this VM ({r_vm1:,.0f}/s), so use chunks (or a broker and store with cores of their own). At
10 s and 60 s per trial, one broker and one collector serve far more than 500 cores in every
column. The model breaks even for chunked trials at `d` = 500 / {r_vm:,.0f} =
{short:.2f} s on this VM: only trials shorter than that make 500 workers outrun one collector
and its store here.
"""
    text = SCALING.read_text()
    text = _replace(text, "capacities", capacities)
    text = _replace(text, "model", model)
    SCALING.write_text(text)
    print(capacities, model)


if __name__ == "__main__":
    main(*sys.argv[1:])
