"""An OCI runtime in front of runc that never asks for a capability this host does not have.

Some machines (a VM whose init dropped one from the bounding set, here CAP_SYS_RESOURCE) cannot
start a container that asks for every capability: `docker run --privileged`, and so every kind
node, fails with `runc create failed: unable to start container process: unable to apply caps:
operation not permitted`. A process can never gain a capability outside its bounding set, so
such a request can only fail. This wrapper takes those capabilities out of what a container
(`create`, `run`: the bundle's config.json) or an exec (`exec --process FILE`) asks for, then
runs runc with the same arguments. A container that asks only for what the host has is
untouched, so registering it as dockerd's default runtime changes nothing else
(tunefleet_dev.engine does, and only where the bounding set is incomplete).

It runs under the system's python3 with the standard library only, outside any virtual
environment: dockerd calls it by path for every container.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

# linux/capability.h, by bit number.
CAPABILITIES = (
    *("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID"),
    *("SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST"),
    *("NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO"),
    *("SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE"),
    *("SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE"),
    *("AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM"),
    *("BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"),
)
_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
# runc's global options that take a value (`--root DIR`); the command is the first other word.
_VALUED = {"--root", "--log", "--log-format", "--criu", "--rootless"}


def bounding_set(status: str) -> int:
    """The CapBnd mask of a /proc/<pid>/status text."""
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    raise ValueError("no CapBnd line")


def missing(mask: int) -> frozenset[str]:
    """The capabilities (CAP_ names) that a bounding-set mask lacks."""
    return frozenset(f"CAP_{name}" for bit, name in enumerate(CAPABILITIES) if not mask >> bit & 1)


def strip(process: dict[str, object], absent: Iterable[str]) -> bool:
    """Remove `absent` from an OCI process's capability sets; True if anything changed."""
    caps = process.get("capabilities")
    if not isinstance(caps, dict):
        return False
    drop = set(absent)
    changed = False
    for name in _SETS:
        values = caps.get(name)
        if isinstance(values, list):
            kept = [value for value in values if value not in drop]
            changed |= len(kept) != len(values)
            caps[name] = kept
    return changed


def _command(args: Sequence[str]) -> tuple[str, list[str]]:
    """runc's command word and the words after it."""
    index = 0
    while index < len(args):
        word = args[index]
        if word.startswith("-"):
            index += 2 if word in _VALUED else 1
            continue
        return word, list(args[index + 1 :])
    return "", []


def _option(args: Sequence[str], *names: str) -> str | None:
    for index, word in enumerate(args):
        for name in names:
            if word == name and index + 1 < len(args):
                return args[index + 1]
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def target(args: Sequence[str]) -> tuple[Path, bool] | None:
    """The JSON file that holds the process this invocation starts, and whether it is a whole
    bundle config (True) or a bare process (exec); None for every other runc command."""
    command, rest = _command(args)
    if command in ("create", "run"):
        bundle = _option(rest, "--bundle", "-b") or "."
        return Path(bundle) / "config.json", True
    if command == "exec":
        process = _option(rest, "--process", "-p")
        if process:
            return Path(process), False
    return None


def rewrite(path: Path, whole_bundle: bool, absent: Iterable[str]) -> bool:
    document = json.loads(path.read_text())
    process = document.get("process") if whole_bundle else document
    if not isinstance(process, dict) or not strip(process, absent):
        return False
    partial = path.with_name(path.name + ".hostcaps")
    partial.write_text(json.dumps(document))
    partial.replace(path)
    return True


def find_runc(own: Path) -> str:
    search = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
    for directory in search.split(":"):
        candidate = Path(directory or ".") / "runc"
        usable = candidate.is_file() and os.access(candidate, os.X_OK)
        if usable and candidate.resolve() != own.resolve():
            return str(candidate)
    found = shutil.which("runc")
    if found is None:
        raise SystemExit("runc-hostcaps: no runc on PATH")
    return found


def main() -> None:
    args = sys.argv[1:]
    found = target(args)
    if found is not None:
        absent = missing(bounding_set(Path("/proc/self/status").read_text()))
        if absent:
            rewrite(*found, absent)
    runc = find_runc(Path(sys.argv[0]))
    os.execv(runc, [runc, *args])


if __name__ == "__main__":
    main()
