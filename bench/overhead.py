"""Benchmark 2: the pipeline's own cost, with the no-op model (trains nothing).

publisher -> RabbitMQ -> workers -> RabbitMQ -> collector -> MongoDB, timed from `submit` to
the collector's write of the last result; CPU per trial from each process's CPU time over the
run (the broker and the store included).
"""

from __future__ import annotations

import time

from tunefleet_dev.devservices import Services

from bench.common import (
    CORES,
    Spread,
    cpu_seconds,
    last_stored_at,
    pipeline,
    save_json,
    service_pids,
    services_up,
    table,
    trial_docs,
    wait_stored,
    write_section,
)
from bench.studies import noop_spec

COMPONENTS = ("publisher", "workers", "collector", "rabbitmq", "mongodb")


def _one(
    services: Services, n_trials: int, chunk_size: int, workers: int
) -> tuple[float, dict[str, float]]:
    with pipeline(services, workers=workers) as run:
        pids = {name: run.pid(name) for name in run.names()} | service_pids(services)
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        study = run.client.spec(noop_spec(n_trials, chunk_size))
        t0 = time.time()
        study_id = run.client.submit(study)
        wait_stored(run, study_id, n_trials, timeout=1800, poll=0.5)
        docs = trial_docs(run, study_id)
        wall = last_stored_at(docs) - t0
        after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        if any(d["status"] != "done" for d in docs):
            raise RuntimeError("a no-op trial failed")
    cpu: dict[str, float] = dict.fromkeys(COMPONENTS, 0.0)
    for name in pids:
        component = "workers" if name.startswith("worker") else name
        cpu[component] += (after[name] - before[name]) * 1000 / n_trials
    return n_trials / wall, cpu


def run(reps: int, quick: bool) -> None:
    # A no-op worker mostly waits for broker round trips, so with chunk_size 1 more worker
    # processes than cores still add throughput: measured with as many as cores, and twice.
    cases = (
        [(2_000, 100, CORES), (500, 1, CORES)]
        if quick
        else [(30_000, 100, CORES), (5_000, 1, CORES), (5_000, 1, 2 * CORES)]
    )
    rows = []
    cpu_rows = []
    results: list[dict[str, object]] = []
    with services_up() as services:
        for n_trials, chunk_size, workers in cases:
            rates: list[float] = []
            cpus: list[dict[str, float]] = []
            for rep in range(reps):
                rate, cpu = _one(services, n_trials, chunk_size, workers)
                rates.append(rate)
                cpus.append(cpu)
                print(
                    f"chunk_size {chunk_size}, {workers} workers, rep {rep + 1}: "
                    f"{rate:.0f} trials/s, " + ", ".join(f"{k} {v:.3f} ms" for k, v in cpu.items()),
                    flush=True,
                )
            rows.append([chunk_size, workers, f"{n_trials:,}", Spread.of(rates).fmt(0)])
            results.append(
                {
                    "chunk_size": chunk_size,
                    "workers": workers,
                    "trials_per_s": Spread.of(rates).median,
                    "cpu_ms_per_trial": {
                        k: Spread.of([c[k] for c in cpus]).median for k in COMPONENTS
                    },
                }
            )
            cpu_rows.append(
                [chunk_size, workers]
                + [Spread.of([c[k] for c in cpus]).fmt(3) for k in COMPONENTS]
                + [Spread.of([sum(c.values()) for c in cpus]).fmt(3)]
            )
    body = f"""
The `noop` model through the whole path on {CORES} cores, median of {reps} repetitions
(min..max). Time from `Client.submit` to the `stored_at` of the last result in MongoDB.
Targets: >= 1,000 trials/s with chunking, >= 300 trials/s with `chunk_size: 1`.

{table(["chunk_size", "workers", "trials", "trials/s end to end"], rows)}

CPU milliseconds per trial, per component (user + system CPU over the run / trials; the
broker and the store are the local RabbitMQ and FerretDB processes):

{table(["chunk_size", "workers", *COMPONENTS, "total"], cpu_rows)}
"""
    write_section("overhead", "2. Pipeline overhead", body)
    # The scale model (python -m bench.scaling) reads these medians.
    save_json("overhead", results)
