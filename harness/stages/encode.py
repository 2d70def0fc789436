"""Encode stage (the submission's image, network off): label-free audio batches -> embeddings.

The container sees only each task's `prepared/audio` (padded audio batches: no keys, no labels),
the submission's download cache read-only, and one writable folder per task, capped in size. The
host counts the embeddings itself against what was prepared: a missing or truncated batch is the
task's failure, never a skip, and the container's own summary is never trusted.

One container encodes every task in turn (one torch import). When it dies on a task (OOM, timeout,
bad output), that task fails and the container is started again for the tasks it never reached.
Each task gets the stage's wall clock, counted from the end of the one before.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from checker.jobs import ENCODE_DONE, EncodeJob, write_jobs
from harness import paths
from harness.errors import InfraError
from harness.sandbox.agent import (
    OFFLINE_ENV,
    SUBMISSION_SRC,
    agent_command,
    agent_mount,
)
from harness.sandbox.profiles import SandboxProfile
from harness.stage_names import Stage
from harness.sandbox.run import run_stage
from harness.sandbox.spec import Mount, Outcome, RunResult, RunSpec
from harness.sandbox.watch import directory_size
from harness.stages.fetch import cache_dir
from harness.stages.intake import Submission
from harness.tasks.arguments import TaskRef


@dataclasses.dataclass(frozen=True)
class EncodeSpec:
    submission: Submission
    image: str
    tasks: tuple[TaskRef, ...]
    prepared: dict[str, Path]  # task label -> prepared folder
    runs: Path  # the submission's run folder: <runs>/<task>/embeddings
    profile: SandboxProfile
    log_dir: Path
    gpu: str | None = None


@dataclasses.dataclass(frozen=True)
class Encoded:
    """One task's embeddings, or why the submission failed it."""

    embeddings: Path | None
    reason: str = ""
    log: Path | None = None  # the stage log of a failure (the whole traceback is there)
    run: RunResult | None = None  # the container that encoded it (its peaks, measured from the host)

    @property
    def ok(self) -> bool:
        return self.embeddings is not None


def embeddings_dir(runs: Path, task: TaskRef) -> Path:
    return runs / task.label / "embeddings"


def encode(client: Any, spec: EncodeSpec, *, progress: Callable[[str], None] = print) -> dict[str, Encoded]:
    """Embeddings per task, or the reason the task failed.

    Raises:
        InfraError: the engine failed, or the stage ended without encoding anything and without a
            task to blame (the stage itself is broken).
    """
    results: dict[str, Encoded] = {}
    pending = list(spec.tasks)
    attempt = 0
    while pending:
        attempt += 1
        progress(f"encode: {len(pending)} task(s) in the submission's sandbox (network off)")
        verdicts = encode_batch(client, spec, pending, attempt)
        still, blamed = [], False
        for task in pending:
            verdict = verdicts[task.label]
            if verdict is None:  # not reached before the container ended: try again
                still.append(task)
                continue
            results[task.label] = verdict
            blamed = blamed or not verdict.ok
        if still and not blamed:
            raise InfraError("the encode stage ended without encoding anything", log_path=spec.log_dir / "encode.log")
        pending = still
    return results


def encode_batch(client: Any, spec: EncodeSpec, tasks: list[TaskRef], attempt: int) -> dict[str, Encoded | None]:
    layout = Layout.make(spec, tasks)
    mounts = [agent_mount(), Mount(cache_dir(spec.submission), "/cache"), *layout.mounts]
    limit = spec.profile.stage(Stage.ENCODE).wall_clock_s
    with tempfile.TemporaryDirectory(prefix="encode-", dir=paths.scratch()) as tmp:
        write_jobs(Path(tmp) / "jobs.json", layout.jobs)
        Path(tmp).chmod(0o755)
        mounts.append(Mount(Path(tmp), "/jobs"))
        clock = Clock(spec, tasks, layout.dirs)
        clock.begin()
        run = RunSpec(stage=Stage.ENCODE, image=spec.image, workdir=SUBMISSION_SRC, gpu_uuid=spec.gpu,
                      command=agent_command("encode", *encode_args(spec, "/jobs/jobs.json")),
                      mounts=tuple(mounts), wall_clock_s=limit * len(tasks) + 60, env=ENCODE_ENV)
        result = run_stage(client, spec.profile, run, spec.log_dir / f"encode-{attempt}.log", watch=clock.watch)
    result.raise_for_infra()
    return verdicts(spec, tasks, layout.dirs, result)


#: the encode agent's environment: the download cache read-only, libraries offline
ENCODE_ENV = {"HF_HOME": "/cache/huggingface", "TORCH_HOME": "/cache/torch", **OFFLINE_ENV}


def encode_args(spec: EncodeSpec, jobs: str) -> tuple[str, ...]:
    """`checker.encode`'s arguments: the one place they are written, for its own container and for
    the check stage's container that encodes after its go."""
    return ("--submission", SUBMISSION_SRC, "--encoder", spec.submission.encoder.spec, "--jobs", jobs)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each task's audio and embeddings are, on the host and in the container.

    `staged`: the audio folders are empty until `stage_audio()` links the prepared batches into them
    (the check stage's container encodes after its go, and must not see the test audio before)."""

    jobs: tuple[EncodeJob, ...]
    dirs: tuple[Path, ...]  # the embeddings folders, per task
    mounts: tuple[Mount, ...]
    staging: tuple[Path, ...] = ()  # the audio folders to link into, per task (staged only)

    @classmethod
    def make(cls, spec: EncodeSpec, tasks: list[TaskRef], staged: bool = False) -> "Layout":
        jobs, dirs, mounts, staging = [], [], [], []
        for i, task in enumerate(tasks):
            embeddings = embeddings_dir(spec.runs, task)
            shutil.rmtree(embeddings, ignore_errors=True)
            embeddings.mkdir(parents=True)
            embeddings.chmod(0o777)
            dirs.append(embeddings)
            audio = spec.prepared[task.label] / "audio"
            if staged:
                audio = spec.runs / task.label / "audio-staged"
                shutil.rmtree(audio, ignore_errors=True)
                audio.mkdir(parents=True)
                audio.chmod(0o755)
                staging.append(audio)
            mounts += [Mount(audio, f"/audio/{i}"), Mount(embeddings, f"/out/{i}", read_only=False)]
            jobs.append(EncodeJob(audio=f"/audio/{i}", out=f"/out/{i}"))
        return cls(tuple(jobs), tuple(dirs), tuple(mounts), tuple(staging))

    def stage_audio(self, spec: EncodeSpec, tasks: list[TaskRef]) -> None:
        """Link each task's prepared audio into its (mounted, read-only) staging folder: the files
        appear in the running container at once, and cost no copy on one file system."""
        for task, target in zip(tasks, self.staging):
            source = spec.prepared[task.label] / "audio"
            for path in sorted(source.rglob("*")):
                dest = target / path.relative_to(source)
                if path.is_dir():
                    dest.mkdir(exist_ok=True)
                    dest.chmod(0o755)
                    continue
                try:
                    os.link(path, dest)
                except OSError:  # another file system
                    shutil.copyfile(path, dest)

    def unstage(self) -> None:
        for target in self.staging:
            shutil.rmtree(target, ignore_errors=True)


class Clock:
    """The encode's watch: each task gets the stage's wall clock, counted from the end of the one
    before, and the embeddings together stay under a cap (64x the audio, at least 1 GiB: beyond
    that it is a runaway writer, not an encoder)."""

    def __init__(self, spec: EncodeSpec, tasks: list[TaskRef], dirs: tuple[Path, ...]):
        self.limit = spec.profile.stage(Stage.ENCODE).wall_clock_s
        self.dirs = dirs
        self.cap = 1024**3
        self.start: float | None = None
        self.done = 0
        self.measure(spec, tasks)

    def measure(self, spec: EncodeSpec, tasks: list[TaskRef]) -> None:
        """The cap from the prepared audio (again once it is all there: it may be prepared meanwhile)."""
        audio_bytes = sum(p.stat().st_size for t in tasks for p in (spec.prepared[t.label] / "audio").rglob("*.bin"))
        self.cap = max(64 * audio_bytes, 1024**3)

    def begin(self) -> None:
        self.start = time.monotonic()

    def watch(self, _container: Any) -> tuple[Outcome, str] | None:
        if self.start is None:  # not started yet (the check stage's container before its go)
            return None
        done = sum((d / ENCODE_DONE).exists() for d in self.dirs)
        if done != self.done:
            self.done, self.start = done, time.monotonic()
        if time.monotonic() - self.start > self.limit:
            return Outcome.TIMEOUT, f"killed: a task passed the encode stage's wall clock of {self.limit:g} s"
        if sum(directory_size(d) for d in self.dirs) > self.cap:
            return Outcome.OUTPUT_LIMIT, f"killed: embeddings passed their cap of {self.cap} B"
        return None


def verdicts(spec: EncodeSpec, tasks: list[TaskRef], dirs: tuple[Path, ...], result: RunResult) -> dict[str, Encoded | None]:
    """Per task: its embeddings (counted by the host), the failure the run ended in, or None (not reached)."""
    verdicts: dict[str, Encoded | None] = {}
    failure_assigned = False
    for task, embeddings in zip(tasks, dirs):
        problem = count_embeddings(spec.prepared[task.label], embeddings)
        if problem is None:
            verdicts[task.label] = Encoded(embeddings, run=result)
            continue
        if failure_assigned:
            verdicts[task.label] = None  # never reached: rerun
            continue
        failure_assigned = True
        if result.outcome is Outcome.OK:
            verdicts[task.label] = Encoded(None, f"encode output incomplete: {problem}", result.log_path, result)
        else:
            tail = result.log_tail(300).strip().splitlines()
            verdicts[task.label] = Encoded(None, f"encode {result.outcome.value}: {result.detail}"
                                           + (f" ({tail[-1][:200]})" if tail and result.outcome is Outcome.FAILED else ""),
                                           result.log_path, result)
    return verdicts


def count_embeddings(prepared: Path, embeddings: Path) -> str | None:
    """The host's own count: every prepared batch has an embedding header with the same B and a
    payload of the size the header promises (plain files, one link each); None when all is there."""
    from checker.batchio import BatchFormatError, payload_size, read_header

    manifest = json.loads((prepared / "manifest.json").read_text())
    for split in manifest["splits"]:
        for audio_header in sorted((prepared / "audio" / split["dir"]).glob("*.json")):
            emb = embeddings / split["dir"] / audio_header.name
            try:
                if emb.is_symlink() or not emb.is_file():
                    return f"split {split['split']}: no embeddings for batch {audio_header.stem}"
                header = read_header(emb)
                batch = read_header(audio_header, linked_ok=True)["shape"][0]  # the prepared cache: trusted
                data = emb.with_suffix(".bin")
                if data.is_symlink() or not data.is_file() or data.stat().st_nlink != 1 \
                        or data.stat().st_size != payload_size(header):
                    return f"split {split['split']} batch {audio_header.stem}: payload missing, linked or truncated"
            except (BatchFormatError, ValueError, KeyError, OSError) as exc:
                return f"split {split['split']} batch {audio_header.stem}: unreadable header ({exc})"
            if len(header["shape"]) != 3 or header["shape"][0] != batch:
                return (f"split {split['split']} batch {audio_header.stem}: expected [{batch}, T', D], "
                        f"got {header['shape']}")
    return None
