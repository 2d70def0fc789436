"""Prepare stage (trusted runtime image, network off): X-ARES task data -> label-free audio batches.

`checker.prepare` runs X-ARES's own reader (decode, resample to the encoder's rate, crops, batching,
worker order) and writes the padded audio batches the encoder will see, their per-sample meta
(kept for the score stage, never shown to a submission) and a manifest of counts. The output is
cached per (task data fingerprint, task module, sample rate, hop, dimension, runtime image), so a
second submission at the same sample rate prepares nothing. Bad task data is an infrastructure
error naming the task and the shard: the harness never scores on silently reduced data.

The container can start warm (`start`): it imports torch and X-ARES while the stages before it
run, and works once `prepare` hands it its jobs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from checker.jobs import EncoderAttributes, PrepareFailure, PrepareJob, job_rows
from harness import paths
from harness.errors import InfraError
from harness.safeio import read_json, sha256_file, write_atomic
from harness.sandbox.agent import agent_mount
from harness.sandbox.profiles import SandboxProfile
from harness.stage_names import Stage
from harness.sandbox.spec import Mount, RunResult
from harness.sandbox.warm import WarmStage
from harness.tasks.arguments import TaskRef

MANIFEST_CAP = 16 * 1024**2


@dataclasses.dataclass(frozen=True)
class PrepareSpec:
    data: Path  # the X-ARES env dir: <task>/<split>*.tar
    tasks: tuple[TaskRef, ...]
    runtime: str  # the runtime image
    profile: SandboxProfile
    log_dir: Path


@dataclasses.dataclass
class PrepareContainer:
    """A prepare container started ahead of its jobs, and the folder it writes into."""

    stage: WarmStage
    work: Path


def fingerprint(directory: Path) -> str:
    """Content hash of a task's data folder, cached by (path, size, mtime) so unchanged data is not reread."""
    cache_file = paths.subdir("cache") / "fingerprints.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    digest = hashlib.sha256()
    # X-ARES run directly on the same env writes embeddings/ and checkpoints/ into it: not data.
    skip = {"embeddings", "checkpoints"}
    for path in sorted(p for p in directory.rglob("*")
                       if p.is_file() and not skip & set(p.relative_to(directory).parts[:1])):
        stat = path.stat()
        # ctime and inode too: a rewrite that restores the modification time is still a change
        key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|{stat.st_ino}"
        if key not in cache:
            cache[key] = sha256_file(path)
        digest.update(f"{path.relative_to(directory)}\0{cache[key]}\n".encode())
    write_atomic(cache_file, json.dumps(cache))
    return digest.hexdigest()


def cache_root() -> Path:
    return paths.subdir("prepared")


def prepared_dir(spec: PrepareSpec, task: TaskRef, attributes: EncoderAttributes) -> Path:
    """Where `task`'s batches for this encoder's rate live in the cache (present or not)."""
    data_dir = spec.data / task.task_name if task.task_name and (spec.data / task.task_name).is_dir() else spec.data
    parts = {"data": fingerprint(data_dir), "task": task.digest, "sr": attributes.sampling_rate,
             "runtime": spec.runtime}
    if task.file is not None:
        # An organizer's task file may read the hop or the dimension in its config; X-ARES 0.1.3's own
        # modules use them only when scoring, so prepared data serves every encoder at one rate
        # (`aecc data prepare` ahead of the first submission).
        parts.update(hop=attributes.hop_size_in_ms, dim=attributes.output_dim)
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
    return cache_root() / f"{task.label}-{key}"


def is_prepared(directory: Path) -> bool:
    return (directory / "manifest.json").is_file()


def probably_prepared(tasks: tuple[TaskRef, ...] | list[TaskRef]) -> bool:
    """Every task has been prepared at some sample rate: most submissions run at 16 kHz, so a warm
    prepare container would only slow the stages in front of it."""
    root = cache_root()
    return all(any(is_prepared(d) for d in root.glob(f"{t.label}-*")) for t in tasks)


def start(client: Any, spec: PrepareSpec, *, max_wait_s: float) -> PrepareContainer:
    """The prepare container for `spec.tasks`, importing while the stages before it run."""
    work = Path(tempfile.mkdtemp(prefix="prepare-", dir=cache_root()))
    work.chmod(0o777)
    mounts = [Mount(spec.data.resolve(), "/env"), Mount(work, "/out", read_only=False)]
    for task in spec.tasks:
        mounts += task.mounts()
    stage = WarmStage(client, spec.profile, stage=Stage.PREPARE, image=spec.runtime, agent_mount=agent_mount(),
                      then="checker.prepare", warm=("torchaudio", "xares.task"), mounts=mounts,
                      log_path=spec.log_dir / "prepare.log", max_wait_s=max_wait_s, scratch=(work,))
    stage.start(spec.profile.stage(Stage.PREPARE).wall_clock_s * len(spec.tasks))
    return PrepareContainer(stage, work)


def prepare(client: Any, spec: PrepareSpec, attributes: EncoderAttributes, *,
            warm: PrepareContainer | None = None, progress: Callable[[str], None] = print) -> dict[str, Path]:
    """The prepared folder of every task, preparing those not cached at this encoder's rate.

    Raises:
        InfraError: the task data is missing, corrupt, or would lose samples (naming task and shard).
    """
    targets = {t.label: prepared_dir(spec, t, attributes) for t in spec.tasks}
    # Never two preparations of one (task data, rate) at once, in this process or another: the
    # second waits here and then finds the first's output in the cache.
    with _locked(sorted(targets.values())):
        return _prepare(client, spec, attributes, targets, warm, progress)


@contextlib.contextmanager
def _locked(targets: list[Path]) -> Any:
    with contextlib.ExitStack() as stack:
        for target in targets:  # sorted: two runs take the same locks in the same order
            fh = stack.enter_context(open(target.with_name(target.name + ".lock"), "w"))
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _prepare(client: Any, spec: PrepareSpec, attributes: EncoderAttributes, targets: dict[str, Path],
             warm: PrepareContainer | None, progress: Callable[[str], None]) -> dict[str, Path]:
    todo = [t for t in spec.tasks if not is_prepared(targets[t.label])]
    for task in spec.tasks:
        if task not in todo:
            progress(f"prepare {task.label}: cached")
    if not todo:
        if warm is not None:
            warm.stage.cancel()
        return targets
    progress(f"prepare: decoding and resampling {len(todo)} task(s) to {attributes.sampling_rate} Hz "
             "(trusted runtime, network off)")
    limit = spec.profile.stage(Stage.PREPARE).wall_clock_s * len(todo)
    with contextlib.ExitStack() as stack:
        if warm is None:
            warm = start(client, dataclasses.replace(spec, tasks=tuple(todo)), max_wait_s=60)
            stack.enter_context(warm.stage)
        jobs = []
        for i, task in enumerate(todo):
            (warm.work / str(i)).mkdir()
            (warm.work / str(i)).chmod(0o777)
            jobs.append(PrepareJob(task=task.module, config_function=task.config_function, out=f"/out/{i}"))
        warm.stage.go(["--jobs", "/ctl/jobs.json", "--env", "/env", *attributes.to_args()], limit_s=limit,
                      files={"jobs.json": job_rows(jobs)})
        result = warm.stage.result()
        result.raise_for_infra()
        for i, task in enumerate(todo):
            _install(task, warm.work / str(i), targets[task.label], result)
    return targets


def _install(task: TaskRef, out: Path, target: Path, result: RunResult) -> None:
    """Check one task's output and move it into the cache (another harness may have won the race)."""
    if (out / "error.json").is_file():
        failure = PrepareFailure.from_dict(read_json(out / "error.json", 64 * 1024))
        raise InfraError(f"preparing task {task.label} failed",
                         expected="X-ARES's reader to decode every shard of the task",
                         found=failure.detail, fix="repair the task data under --data", log_path=result.log_path)
    if not is_prepared(out):
        raise InfraError(f"preparing task {task.label} failed ({result.outcome.value})",
                         expected="the prepare stage to finish",
                         found=result.log_tail(800).strip() or result.detail, log_path=result.log_path)
    manifest = read_json(out / "manifest.json", MANIFEST_CAP)
    dropped = [s for s in manifest["splits"] if s["dropped_keys"]]
    if dropped:
        first = dropped[0]
        raise InfraError(
            f"task {task.label}: X-ARES would silently drop samples",
            expected="every key in the shards to have audio and a json label",
            found=f"split {first['split']}: {first['dropped_keys']} of {first['source_keys']} keys dropped "
                  f"(no json: {first['missing_json'][:3]}, no audio: {first['missing_audio'][:3]})",
            fix="repair the task data; the harness does not score on silently reduced data",
            log_path=result.log_path)
    if not target.exists():  # another harness may have prepared it meanwhile
        os.replace(out, target)

