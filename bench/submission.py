"""Benchmark 3: the seed's scale of submission, a 26,160-trial grid in chunks of 6 trials.

Only the publisher runs, so every trial message stays in the queue: time from `submit` until
the trials queue holds all of them, and the publisher's peak resident memory over its life.
"""

from __future__ import annotations

import math
import time

from tunefleet_runtime.broker import connect, topology_of

from bench.common import Spread, peak_rss_mb, pipeline, services_up, table, write_section
from bench.studies import seed_scale_spec


def run(reps: int, quick: bool) -> None:
    spec = seed_scale_spec()
    n_trials = len(spec["search"]["noop"]["grid"]["x"])
    n_messages = math.ceil(n_trials / spec["chunk_size"])
    times: list[float] = []
    peaks: list[float] = []
    with services_up() as services:
        for rep in range(reps):
            with pipeline(services, workers=0, start=("publisher",)) as run_:
                connection, channel = connect(run_.settings, retry_for_s=10)
                queue = topology_of(run_.settings).trials_queue
                study = run_.client.spec(spec)
                t0 = time.time()
                run_.client.submit(study)
                while True:
                    ready = channel.queue_declare(queue, passive=True).method.message_count
                    if ready >= n_messages:
                        break
                    if time.time() - t0 > 600:
                        raise TimeoutError(f"only {ready} of {n_messages} messages after 600 s")
                    time.sleep(0.02)
                times.append(time.time() - t0)
                peaks.append(peak_rss_mb(run_.pid("publisher")))
                channel.queue_purge(queue)
                connection.close()
            print(f"rep {rep + 1}: {times[-1]:.2f} s, peak {peaks[-1]:.0f} MB", flush=True)
    rows = [
        ["time to publish, s (submit -> all messages in the queue)", Spread.of(times).fmt(2)],
        ["publisher peak resident memory, MB (VmHWM)", Spread.of(peaks).fmt(0)],
    ]
    body = f"""
{n_trials:,} no-op trials in chunks of {spec["chunk_size"]} = {n_messages:,} confirmed messages;
median of {reps} repetitions (min..max), a fresh publisher process each time.
Targets: <= 10 s and <= 300 MB.

{table(["", "measured"], rows)}
"""
    write_section("submission", "3. The seed's scale of submission", body)
