"""Watching a running container from the host: its memory peak from the cgroup, and caps on what it
writes into host folders.

Everything here reads host-side state the submission cannot forge: the kernel's memory cgroup and
the sizes of the folders the container was given, walked without following links (a container may
plant them). A cap is a poll (every 0.5 s in `run_stage`), so a writer can overshoot it by what it
writes in one interval; `discard_over_cap` then empties what it left.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

from harness.sandbox.spec import Outcome

_CGROUP_ROOT = Path("/sys/fs/cgroup")


def memory_peak_files(container_id: str, root: Path = _CGROUP_ROOT) -> list[Path]:
    """Where the kernel keeps a container's memory high-water mark, for the layouts Docker uses.

    cgroup v1 keeps the peak itself (`memory.max_usage_in_bytes`); v2 kernels from 5.19 keep
    `memory.peak`, older ones only `memory.current`, which the sampler then polls for a maximum.
    """
    return [
        root / "memory" / "docker" / container_id / "memory.max_usage_in_bytes",
        root / "system.slice" / f"docker-{container_id}.scope" / "memory.peak",
        root / "docker" / container_id / "memory.peak",
        root / "system.slice" / f"docker-{container_id}.scope" / "memory.current",
        root / "docker" / container_id / "memory.current",
    ]


class MemoryPeak(threading.Thread):
    """Host-side peak memory of a container, read from its cgroup while it runs.

    Trusted where the in-container figure is not: the submission can lie about its own RSS but not
    about the cgroup the kernel charges. None when the engine is remote (no cgroup files here).
    """

    def __init__(self, container_id: str, stop: threading.Event, interval_s: float = 0.1):
        super().__init__(daemon=True, name=f"mem-{container_id[:12]}")
        self.files = memory_peak_files(container_id)
        self.stop = stop
        self.interval_s = interval_s
        self.peak: int | None = None

    def run(self) -> None:
        while True:
            value = read_memory_peak(self.files)
            if value is not None:
                self.peak = value if self.peak is None else max(self.peak, value)
            if self.stop.wait(self.interval_s):
                return


def read_memory_peak(files: list[Path]) -> int | None:
    """The kernel's figure from the first of `memory_peak_files` that can be read; None when none can."""
    for path in files:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return None


def size_cap(directory: Path, cap: int, what: str) -> Callable[[Any], tuple[Outcome, str] | None]:
    """A `watch` for `run_stage`: `output_limit` once `directory` holds more than `cap` bytes."""

    def check(_container: Any) -> tuple[Outcome, str] | None:
        if directory_size(directory) > cap:
            return Outcome.OUTPUT_LIMIT, f"killed: {what} passed its cap of {cap} B"
        return None

    return check


def discard_over_cap(directory: Path, cap: int) -> bool:
    """Empty `directory` if it holds more than `cap` bytes (what a writer killed at a cap left: junk
    that would otherwise stay on the host disk). Best effort; True if it was over."""
    if directory_size(directory) <= cap:
        return False
    for child in list(directory.iterdir()):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    return True


def directory_size(root: Path) -> int:
    """Bytes under `root`, without following links (a container may plant them)."""
    total = 0
    stack = [Path(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total
