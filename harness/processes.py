"""Is the process that left something behind (a lease, a container, a scratch folder) still alive?

Owners are recorded as (host, PID, start time): a PID alone is recycled, so the start time tells a
live owner from a stranger that got its PID."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path


def process_start(pid: int) -> str | None:
    """When process `pid` started (None if there is none): a recycled PID has another start time.

    On Linux the kernel's start time in clock ticks since boot (/proc/PID/stat, field 22), exact and
    the same whoever reads it. Not psutil's `create_time()`: that adds the boot time, which the kernel
    recomputes from the wall clock on every read of /proc/stat, so two processes can see one process's
    start a second apart, and a live owner would look dead."""
    if pid <= 0:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return "ticks:" + stat[stat.rindex(")") + 2:].split()[19]
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # a Linux host without that process
    except (OSError, ValueError, IndexError):
        pass
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.0f}"
    except (psutil.Error, ValueError):
        return None


def alive(host: str | None, pid: int, started: str | None) -> bool | None:
    """True/False for an owner on this host; None for one elsewhere (this host cannot tell)."""
    if host != socket.gethostname():
        return None
    return started is not None and process_start(pid) == started


def owner_token(pid: int | None = None) -> str:
    """`<pid>x<digest of its start>`: safe in a file name, and enough to tell whether it still runs."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}x{hashlib.sha256(str(process_start(pid)).encode()).hexdigest()[:10]}"


def token_alive(token: str) -> bool:
    """Whether the process a token names (`owner_token`) still runs on this host."""
    try:
        pid = int(token.split("x", 1)[0])
    except ValueError:
        return False
    return owner_token(pid) == token and process_start(pid) is not None
