"""How much runs at once: sandboxes within host RAM and cores, at most one GPU stage per GPU.

Each running sandbox may use the profile's memory (12 GiB) and CPUs (2), so the host's RAM and
cores say how many may run together; `--jobs` caps it further. Stages are of two weights:

- light (build, fetch): mostly network and pip; one at a time, beside the heavy ones, so the next
  submission's image is built while the current one encodes;
- heavy (check, prepare, encode, score): CPU or GPU bound; as many as RAM and cores allow.

A GPU stage (check, encode and score on a GPU profile) also holds one GPU, by UUID, for its
duration: never two GPU stages on one GPU. On a host without GPUs the `cpu` profile runs and only
RAM and cores bound the concurrency.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
from typing import Iterator, Sequence


@dataclasses.dataclass(frozen=True)
class Capacity:
    """How many of each kind may run at once, and why (shown at the start of a run)."""

    in_flight: int  # submissions being worked on at once
    heavy: int
    light: int
    gpus: tuple[str, ...]
    reasons: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.in_flight < 1 or self.heavy < 1 or self.light < 0:
            raise ValueError(f"capacity must allow some work: {self}")


def plan(*, memory_bytes: int, cpus: float, host_memory_bytes: int, host_cpus: int, gpus: Sequence[str] = (),
         jobs: int | None = None) -> Capacity:
    """The capacity of this host for sandboxes of `memory_bytes` and `cpus` each."""
    ram_slots = max(1, host_memory_bytes // memory_bytes)
    cpu_slots = max(1, int(host_cpus // max(cpus, 1)))
    # One light slot beside the heavy ones where RAM allows it; on a host that fits one sandbox, one.
    light = 1 if ram_slots >= 2 else 0
    heavy = max(1, min(cpu_slots, ram_slots - light))
    reasons = [f"host RAM {host_memory_bytes / 2**30:.0f} GiB / {memory_bytes / 2**30:g} GiB per sandbox = "
               f"{ram_slots} sandbox(es)",
               f"host cores {host_cpus} / {cpus:g} per sandbox = {cpu_slots}"]
    if gpus:
        reasons.append(f"{len(gpus)} GPU(s): at most one GPU stage on each")
    in_flight = heavy + light
    if jobs is not None:
        if jobs < 1:
            raise ValueError("--jobs must be at least 1")
        in_flight = min(in_flight, jobs)
        heavy = min(heavy, jobs)
        reasons.append(f"--jobs {jobs}")
    return Capacity(in_flight=in_flight, heavy=heavy, light=light, gpus=tuple(gpus), reasons=tuple(reasons))


class Slots:
    """The semaphores of a run; `heavy()`, `light()` and `gpu()` are context managers."""

    def __init__(self, capacity: Capacity):
        self.capacity = capacity
        self._heavy = threading.BoundedSemaphore(capacity.heavy)
        self._light = threading.BoundedSemaphore(capacity.light) if capacity.light else self._heavy
        self._gpus: queue.Queue[str] = queue.Queue()
        for uuid in capacity.gpus:
            self._gpus.put(uuid)

    @contextlib.contextmanager
    def heavy(self) -> Iterator[None]:
        with self._heavy:
            yield

    @contextlib.contextmanager
    def spare_heavy(self) -> Iterator[bool]:
        """A second heavy slot for a stage that already holds one, if one is free now (True), else
        none (False). It never waits: a holder waiting for another slot could wait for itself."""
        got = self._heavy.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._heavy.release()

    @contextlib.contextmanager
    def light(self) -> Iterator[None]:
        with self._light:
            yield

    @contextlib.contextmanager
    def gpu(self) -> Iterator[str | None]:
        """One GPU's UUID for a GPU stage (None when the run has no GPUs); never two stages on one."""
        if not self.capacity.gpus:
            yield None
            return
        uuid = self._gpus.get()
        try:
            yield uuid
        finally:
            self._gpus.put(uuid)
