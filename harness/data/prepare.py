"""`aecc data prepare ENV --sample-rate HZ...`: the prepare stage, run before any submission arrives.

The score pipeline prepares a task (decode, resample to the encoder's rate, crop, batch: X-ARES's own
reader in the trusted runtime, network off) the first time a submission needs it at that rate, and
caches the result under `$AECC_HOME/prepared/<task>-<key>` (`harness.stages.prepare.prepared_dir`: a
hash of the task folder's content, the task module, the rate, hop and dimension, and the runtime
image). This module calls exactly that stage (`harness.stages.prepare.prepare`, unchanged) for every
(task, rate) asked for, ahead of time, so a later `aecc score` with the same `$AECC_HOME`, data and
runtime finds the cache and no submission pays the decode pass.

Parallelism: one prepare container per (task, rate), as many at once as the host's cores and RAM hold
sandboxes of the profile (`harness.slots.plan`, `--jobs` on top). Each runs in a worker process of its
own (the stage keeps per-process state: its fingerprint cache file is written through a per-process
temporary name), with its own engine connection.

Before preparing, each task folder is checked against its manifest by size (`aecc data verify` reads
the checksums); a task with problems is not prepared.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from harness.errors import HarnessError, UsageError

#: what `aecc data prepare` assumes for the two attributes the cache key includes besides the rate
DEFAULT_HOP_MS = 40.0
DEFAULT_OUTPUT_DIM = 768


class State(str, enum.Enum):
    PREPARED = "prepared"  # decoded and cached now
    CACHED = "cached"  # was already in the cache
    FAILED = "failed"
    SKIPPED = "skipped"  # its data is not ready


@dataclasses.dataclass(frozen=True)
class Unit:
    task: Any  # TaskRef
    sample_rate: int

    @property
    def label(self) -> str:
        return f"{self.task.label} @ {self.sample_rate} Hz"


@dataclasses.dataclass(frozen=True)
class UnitResult:
    unit: Unit
    state: State
    folder: str = ""
    seconds: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.unit.task.label, "sample_rate": self.unit.sample_rate, "state": self.state.value,
                "folder": self.folder, "seconds": round(self.seconds, 2), "detail": self.detail}


@dataclasses.dataclass(frozen=True)
class PrepareAheadSpec:
    env: Path
    tasks: tuple[Any, ...]  # TaskRef
    sample_rates: tuple[int, ...]
    runtime: str
    profile: str = "cpu"
    hop_ms: float = DEFAULT_HOP_MS
    output_dim: int = DEFAULT_OUTPUT_DIM
    jobs: int | None = None

    def __post_init__(self) -> None:
        from checker.jobs import ATTRIBUTE_RANGES

        object.__setattr__(self, "env", Path(self.env).expanduser().absolute())
        object.__setattr__(self, "sample_rates", tuple(dict.fromkeys(int(r) for r in self.sample_rates)))
        rates = ATTRIBUTE_RANGES["sampling_rate"]
        low, high = int(rates.low), int(rates.high)
        bad = [r for r in self.sample_rates if r not in rates]
        if not self.sample_rates or bad:
            raise UsageError("--sample-rate needs rates an encoder may have", expected=f"{low}..{high} Hz, e.g. 16000",
                             found=", ".join(map(str, bad)) or "none", fix="--sample-rate 16000 (and the rates of the "
                             "encoders you expect, e.g. 24000 32000 44100 48000)")
        if not self.tasks:
            raise UsageError("nothing to prepare", expected="at least one task whose data is under ENV",
                             found="none", fix="fetch the data first (`aecc data fetch`), or name the tasks")
        if not self.env.is_dir():
            raise UsageError(f"{self.env} is not a folder", expected="the X-ARES env folder `aecc data fetch` wrote",
                             found="missing", fix="pass the folder given to `aecc score --data`")

    def units(self) -> list[Unit]:
        return [Unit(t, r) for r in self.sample_rates for t in self.tasks]


@dataclasses.dataclass(frozen=True)
class PrepareAheadReport:
    results: tuple[UnitResult, ...]
    parallel: int
    reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not any(r.state in (State.FAILED, State.SKIPPED) for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "parallel": self.parallel, "capacity": list(self.reasons),
                "units": [r.to_dict() for r in self.results]}


class PrepareEvents(Protocol):
    def planned(self, units: Sequence[Unit], parallel: int, reasons: Sequence[str]) -> None: ...
    def started(self, unit: Unit) -> None: ...
    def finished(self, result: UnitResult) -> None: ...


class NoPrepareEvents:
    def planned(self, units: Sequence[Unit], parallel: int, reasons: Sequence[str]) -> None:
        pass

    def started(self, unit: Unit) -> None:
        pass

    def finished(self, result: UnitResult) -> None:
        pass


def ready_tasks(env: Path, names: Sequence[str] | None = None, *, registry: Any = None) -> tuple[list[Any], list[str]]:
    """(TaskRefs to prepare, notes on what was left out): the named tasks (registry names or task files),
    or every folder under ENV that is a supported registry task."""
    from harness.data.manifest import task_folders
    from harness.tasks.arguments import resolve_tasks
    from harness.tasks.registry import load_registry

    registry = registry or load_registry()
    if names:
        return list(resolve_tasks(list(names), registry=registry)), []
    picked, notes = [], []
    for folder in task_folders(env):
        if folder in registry and registry.get(folder).supported and registry.get(folder).xares_module:
            picked.append(folder)
        else:
            notes.append(f"{folder}: not an X-ARES task of the registry; pass its task module with --tasks FILE")
    return list(resolve_tasks(picked, registry=registry)), notes


def _check_data(env: Path, task: Any) -> str | None:
    from harness.data.manifest import verify_task

    check = verify_task(env, task.task_name or task.label, deep=False)
    if check.ok:
        return None
    first = check.problems[0]
    return f"{first.finding.value} {first.path}: {first.found} ({first.fix})"


def _capacity(profile_name: str, jobs: int | None) -> tuple[int, tuple[str, ...]]:
    import psutil

    from harness.sandbox.profiles import load_profile
    from harness.slots import plan

    profile = load_profile(profile_name)
    capacity = plan(memory_bytes=profile.memory_bytes, cpus=profile.cpus,
                    host_memory_bytes=psutil.virtual_memory().total, host_cpus=os.cpu_count() or 1, jobs=jobs)
    return capacity.heavy, capacity.reasons


def _prepare_unit(env: str, task: Any, sample_rate: int, hop_ms: float, output_dim: int, runtime: str,
                  profile_name: str, log_dir: str) -> dict[str, Any]:
    """One (task, rate) in a worker process: the prepare stage exactly as `aecc score` runs it."""
    from checker.jobs import EncoderAttributes
    from harness.sandbox import engine
    from harness.sandbox.profiles import load_profile
    from harness.stages import prepare as stage

    started = time.monotonic()
    try:
        client = engine.connect()
        logs = Path(log_dir) / f"{task.label}-{sample_rate}"
        logs.mkdir(parents=True, exist_ok=True)
        spec = stage.PrepareSpec(Path(env), (task,), runtime, load_profile(profile_name), logs)
        attributes = EncoderAttributes(sampling_rate=sample_rate, output_dim=output_dim, hop_size_in_ms=hop_ms,
                                       class_name="AeccPrepareAhead")
        target = stage.prepared_dir(spec, task, attributes)
        cached = stage.is_prepared(target)
        folder = stage.prepare(client, spec, attributes, progress=lambda m: None)[task.label]
        return {"state": (State.CACHED if cached else State.PREPARED).value, "folder": str(folder),
                "seconds": time.monotonic() - started, "detail": ""}
    except HarnessError as exc:
        return {"state": State.FAILED.value, "folder": "", "seconds": time.monotonic() - started,
                "detail": exc.render()}
    except Exception as exc:  # noqa: BLE001 (a worker's crash is reported, not lost)
        return {"state": State.FAILED.value, "folder": "", "seconds": time.monotonic() - started,
                "detail": f"{type(exc).__name__}: {exc}"}


def prepare_ahead(spec: PrepareAheadSpec, events: PrepareEvents | None = None, *,
                  worker: Callable[..., dict[str, Any]] = _prepare_unit) -> PrepareAheadReport:
    """Prepare every (task, rate) of `spec` into the cache the score pipeline reads.

    Raises:
        KeyboardInterrupt: interrupted (the workers' containers are removed by their own stage code).
    """
    from harness import paths

    events = events or NoPrepareEvents()
    parallel, reasons = _capacity(spec.profile, spec.jobs)
    units = spec.units()
    events.planned(units, parallel, reasons)
    results: dict[Unit, UnitResult] = {}
    todo = []
    for unit in units:
        problem = _check_data(spec.env, unit.task)
        if problem is not None:
            results[unit] = UnitResult(unit, State.SKIPPED, detail=f"data not ready: {problem}")
            events.finished(results[unit])
        else:
            todo.append(unit)
    log_dir = paths.logs() / "data-prepare"
    # spawn: a fresh interpreter per worker (no engine connection or lock inherited from this one)
    with concurrent.futures.ProcessPoolExecutor(max_workers=parallel,
                                                mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {}
        for unit in todo:
            futures[pool.submit(worker, str(spec.env), unit.task, unit.sample_rate, spec.hop_ms, spec.output_dim,
                                spec.runtime, spec.profile, str(log_dir))] = unit
        running: set[Unit] = set()
        pending = set(futures)
        try:
            while pending:
                for future in pending:  # approximate "started": what the pool has taken
                    unit = futures[future]
                    if future.running() and unit not in running:
                        running.add(unit)
                        events.started(unit)
                done, pending = concurrent.futures.wait(pending, timeout=1.0,
                                                        return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    unit = futures[future]
                    if unit not in running:
                        events.started(unit)
                    try:
                        raw = future.result()
                    except Exception as exc:  # noqa: BLE001 (a dead worker process)
                        raw = {"state": State.FAILED.value, "folder": "", "seconds": 0.0,
                               "detail": f"the worker process failed: {type(exc).__name__}: {exc}"}
                    results[unit] = UnitResult(unit, State(raw["state"]), raw["folder"], raw["seconds"], raw["detail"])
                    events.finished(results[unit])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return PrepareAheadReport(tuple(results[u] for u in units), parallel, tuple(reasons))


def runtime_image(build_options: Any = None) -> tuple[Any, str]:
    """(engine client, the runtime image `aecc score` uses), built or found in the cache as score does."""
    from harness.layers.build import build_chain
    from harness.layers.model import runtime_layer
    from harness.sandbox import engine

    client = engine.connect()
    return client, build_chain(client, runtime_layer(), build_options, log=lambda m: None)[-1].image


__all__ = ["DEFAULT_HOP_MS", "DEFAULT_OUTPUT_DIM", "NoPrepareEvents", "PrepareAheadReport",
           "PrepareAheadSpec", "PrepareEvents", "State", "Unit", "UnitResult", "prepare_ahead", "ready_tasks",
           "runtime_image"]
