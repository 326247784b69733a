"""A store that answers pings and reads but refuses every write, like one with a full disk."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator


@contextlib.contextmanager
def refusing_writes(pid: int) -> Iterator[None]:
    """Lower the process's file-size limit to 1 byte: every write to its data files fails
    (FerretDB answers "disk I/O error", MongoDB its own error), while it stays up and pings.
    Only the soft limit changes, so it can be raised again."""
    prlimit = shutil.which("prlimit")
    assert prlimit, "prlimit (util-linux) is needed to make the store refuse writes"
    subprocess.run([prlimit, "--pid", str(pid), "--fsize=1:unlimited"], check=True)
    try:
        yield
    finally:
        subprocess.run([prlimit, "--pid", str(pid), "--fsize=unlimited:unlimited"], check=True)
