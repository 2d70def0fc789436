"""Measuring processes for `make bench`: wall clocks, peak RSS and the log of what happened.

Kept apart from the scenarios so that every group measures the same way (one spawn, one clock, one
RSS sampler that leaves the engine's own processes out) and so that an interrupted bench can stop
exactly the processes and containers it started, wherever in a scenario they were started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

START = time.monotonic()


def progress(message: str) -> None:
    elapsed = int(time.monotonic() - START)
    print(f"[bench {elapsed // 3600:d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr,
          flush=True)


# --- bookkeeping --------------------------------------------------------------------------------


class Recorder:
    """Metrics (repeated values), raw per-run records, errors and notes, in the JSON's shape."""

    def __init__(self) -> None:
        self.metrics: dict[str, dict] = {}
        self.raw: dict[str, list] = {}
        self.errors: list[dict] = []
        self.notes: list[str] = []

    def define(self, name: str, unit: str, description: str, better: str = "lower") -> None:
        self.metrics.setdefault(name, {"unit": unit, "better": better, "description": description, "values": []})

    def add(self, name: str, value: float | None) -> None:
        if value is not None:
            self.metrics[name]["values"].append(round(float(value), 4))

    def record(self, group: str, entry: dict) -> None:
        self.raw.setdefault(group, []).append(entry)

    def error(self, group: str, what: str, detail: str) -> None:
        progress(f"ERROR {group}: {what}: {detail[-400:]}")
        self.errors.append({"group": group, "what": what, "detail": detail[-4000:]})

    def summarised(self) -> dict[str, dict]:
        out = {}
        for name, m in self.metrics.items():
            values = m["values"]
            summary = {"median": None, "min": None, "max": None, "spread_rel": None, "n": len(values)}
            if values:
                median = statistics.median(values)
                summary.update(median=round(median, 4), min=min(values), max=max(values),
                               spread_rel=round((max(values) - min(values)) / median, 4) if median else 0.0)
            out[name] = {**m, **summary}
        return out


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class RssSampler:
    """Peak RSS of harness processes and their descendants (docker CLI processes excluded; the
    containers' memory is the engine's, not the orchestrator's), polled every `interval` s.

    Tracks each watched process's own peak (its tree) and the peak of the sum over all watched
    processes alive at the same moment."""

    def __init__(self, interval: float = 0.1) -> None:
        import psutil

        self.psutil = psutil
        self.interval = interval
        self.procs: dict[int, Any] = {}
        self.peaks: dict[int, int] = {}
        self.sum_peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def watch(self, pid: int) -> None:
        with contextlib.suppress(self.psutil.Error):
            with self._lock:
                self.procs[pid] = self.psutil.Process(pid)
                self.peaks.setdefault(pid, 0)

    def _tree_rss(self, proc: Any) -> int:
        total = 0
        try:
            members = [proc, *proc.children(recursive=True)]
        except self.psutil.Error:
            return 0
        for p in members:
            try:
                if p.name().startswith("docker"):
                    continue
                total += p.memory_info().rss
            except self.psutil.Error:
                continue
        return total

    def sample(self) -> None:
        with self._lock:
            items = list(self.procs.items())
        total = 0
        for pid, proc in items:
            rss = self._tree_rss(proc)
            total += rss
            self.peaks[pid] = max(self.peaks[pid], rss)
        self.sum_peak = max(self.sum_peak, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


CHILDREN: set[subprocess.Popen] = set()
CONTAINERS: set[str] = set()


@contextlib.contextmanager
def interruptible() -> Any:
    """On Ctrl-C or SIGTERM: SIGTERM to every harness process this bench started (each removes its
    own containers), `docker rm -f` of the baseline containers it named; then re-raise."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except KeyboardInterrupt:
        progress("interrupted: stopping the processes and containers this bench started")
        for child in list(CHILDREN):
            with contextlib.suppress(OSError):
                child.send_signal(signal.SIGTERM)
        for child in list(CHILDREN):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=60)
        for name in list(CONTAINERS):
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def spawn(cmd: Sequence[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "wb")
    proc = subprocess.Popen(list(cmd), stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    fh.close()
    CHILDREN.add(proc)
    return proc


def timed_run(cmd: Sequence[str], log: Path, env: dict | None = None, sampler: RssSampler | None = None,
              cwd: Path | None = None) -> tuple[int, float, int | None]:
    """Run a command to its end: (exit code, wall seconds, peak tree RSS if sampled)."""
    t0 = time.monotonic()
    proc = spawn(cmd, log, env, cwd)
    if sampler is not None:
        sampler.watch(proc.pid)
    rc = proc.wait()
    seconds = time.monotonic() - t0
    CHILDREN.discard(proc)
    peak = sampler.peaks.get(proc.pid) if sampler is not None else None
    return rc, seconds, peak


def env_with(home: Path) -> dict:
    env = dict(os.environ)
    env["AECC_HOME"] = str(home)
    env.setdefault("COLUMNS", "160")
    return env

