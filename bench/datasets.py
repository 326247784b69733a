"""Benchmark 6: uploading a dataset and fetching it on a worker, time and peak memory.

Each step runs in a fresh process (`python -m bench.datasets STEP ...`) whose peak resident
memory (ru_maxrss) is its own: the client's upload (hash, then stream to GridFS), a worker's
fetch into its cache (stream, verify), and, for the baseline, a process that imports the same
modules and connects without moving any data.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import Spread, services_up, table, write_section

GIB = 1 << 30


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _step(step: str, url: str, database: str, path: str) -> dict[str, float]:
    from tunefleet_contract.spec import UploadDataset
    from tunefleet_runtime.store import open_blobs
    from tunefleet_worker.datacache import DataCache

    store = open_blobs(url, database, max_bytes=4 * GIB)
    store.info("0" * 64)  # connected before the clock starts
    started = time.perf_counter()
    if step == "upload":
        info, sent = store.put_file(Path(path), kind="dataset", format="csv", name="bench.csv")
        assert sent, "the database was not empty"
        Path(path + ".sha256").write_text(info.sha256)
    elif step == "fetch":
        sha = Path(path + ".sha256").read_text()
        cache = DataCache(Path(path + ".cache"), 4 * GIB, lambda: store)
        got = cache.path(UploadDataset(kind="upload", target="y", sha256=sha, format="csv"))
        got.unlink()
    return {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb()}


def _run_step(step: str, url: str, database: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.datasets", step, url, database, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{step} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _write_file(path: Path, size: int) -> None:
    block = os.urandom(8 << 20)
    with path.open("wb") as out:
        left = size
        while left > 0:
            out.write(block[: min(left, len(block))])
            left -= len(block)


def run(reps: int, quick: bool) -> None:
    size = (64 << 20) if quick else GIB
    results: dict[str, list[dict[str, float]]] = {"baseline": [], "upload": [], "fetch": []}
    with tempfile.TemporaryDirectory(prefix="tunefleet-bench-data-") as tmp, services_up() as svc:
        path = Path(tmp) / "data.csv"
        _write_file(path, size)
        for rep in range(reps):
            database = f"benchdata{uuid.uuid4().hex[:8]}"
            for step in results:
                results[step].append(_run_step(step, svc.mongodb_url, database, path))
            from pymongo import MongoClient

            MongoClient(svc.mongodb_url).drop_database(database)
            print(
                f"rep {rep + 1}: "
                + ", ".join(
                    f"{s} {r[-1]['seconds']:.1f} s / {r[-1]['peak_mb']:.0f} MB"
                    for s, r in results.items()
                ),
                flush=True,
            )
    mib = size / (1 << 20)
    rows = []
    for step, label in (
        ("baseline", "baseline: same imports, connected, no data"),
        ("upload", "client upload (SHA-256, then GridFS in 1 MiB chunks)"),
        ("fetch", "worker fetch into its cache (streamed, verified)"),
    ):
        peak = Spread.of([r["peak_mb"] for r in results[step]])
        seconds = Spread.of([r["seconds"] for r in results[step]])
        rate = "-" if step == "baseline" else f"{mib / seconds.median:.0f}"
        rows.append([label, peak.fmt(0), seconds.fmt(1) if step != "baseline" else "-", rate])
    body = f"""
One file of {mib:,.0f} MiB, uploaded by a client process and fetched by a worker-side process,
each a fresh process; peak resident memory is the process's own ru_maxrss. Median of {reps}
repetitions (min..max). The point: memory does not grow with the file. The upload's peak is
the baseline plus pymongo's GridFS write buffer (up to 48 MB of chunks per `insert_many`, encoded
once more to send); the fetch reads 8 chunks per round trip. Loading the table into pandas
afterwards is another matter: a worker holds the dataset it trains on.

{table(["step", "peak RSS, MB", "seconds", "MiB/s"], rows)}
"""
    write_section("datasets", "6. Uploaded datasets: memory and speed", body)


if __name__ == "__main__":
    print(json.dumps(_step(*sys.argv[1:5])))
