"""Benchmark 4: a worker's resident memory when idle and after trials of each library."""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    Spread,
    peak_rss_mb,
    pipeline,
    rss_mb,
    services_up,
    table,
    wait_stored,
    write_section,
)
from bench.studies import gridsearch_spec


def _library_spec(library: str, quick: bool) -> dict[str, Any]:
    spec = gridsearch_spec(quick)
    part = spec["search"][library]
    first = {name: values[:1] for name, values in part["grid"].items()}
    search = {library: {**part, "grid": first}}
    return {**spec, "name": f"bench-footprint-{library}", "search": search}


def run(reps: int, quick: bool) -> None:
    libraries = ("xgboost", "lightgbm", "catboost")
    idle: list[float] = []
    after: dict[str, list[float]] = {lib: [] for lib in libraries}
    peak: list[float] = []
    with services_up() as services:
        for rep in range(reps):
            with pipeline(services, workers=1) as run_:
                pid = run_.pid("worker-1")
                time.sleep(2.0)  # idle: connected, consuming, nothing in hand
                idle.append(rss_mb(pid))
                for library in libraries:
                    study_id = run_.client.submit(_library_spec(library, quick))
                    wait_stored(run_, study_id, 1, timeout=600, poll=0.2)
                    after[library].append(rss_mb(pid))
                peak.append(peak_rss_mb(pid))
            print(
                f"rep {rep + 1}: idle {idle[-1]:.0f} MB, "
                + ", ".join(f"after {lib} {after[lib][-1]:.0f} MB" for lib in libraries),
                flush=True,
            )
    data = gridsearch_spec(quick)["dataset"]
    rows = [["idle (connected, consuming)", Spread.of(idle).fmt(0)]]
    rows += [[f"after a trial of {lib}", Spread.of(after[lib]).fmt(0)] for lib in libraries]
    rows.append(["peak (VmHWM)", Spread.of(peak).fmt(0)])
    body = f"""
One worker process, resident memory (VmRSS, MB); after each library it has run one trial of
benchmark 1's grid on `{data["kind"]}` {data["n_samples"]:,} x {data["n_features"]}
(so the dataset, its folds and that library's binned training sets are in memory).
Median of {reps} repetitions (min..max). Target: idle <= 400 MB.

{table(["worker state", "RSS, MB"], rows)}
"""
    write_section("footprint", "4. Worker footprint", body)
