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
    jobs, dirs = [], []
    mounts = [agent_mount(), Mount(cache_dir(spec.submission), "/cache")]
    for i, task in enumerate(tasks):
        embeddings = embeddings_dir(spec.runs, task)
        shutil.rmtree(embeddings, ignore_errors=True)
        embeddings.mkdir(parents=True)
        embeddings.chmod(0o777)
        dirs.append(embeddings)
        mounts += [Mount(spec.prepared[task.label] / "audio", f"/audio/{i}"),
                   Mount(embeddings, f"/out/{i}", read_only=False)]
        jobs.append(EncodeJob(audio=f"/audio/{i}", out=f"/out/{i}"))
    limit = spec.profile.stage(Stage.ENCODE).wall_clock_s
    with tempfile.TemporaryDirectory(prefix="encode-", dir=paths.scratch()) as tmp:
        write_jobs(Path(tmp) / "jobs.json", jobs)
        Path(tmp).chmod(0o755)
        mounts.append(Mount(Path(tmp), "/jobs"))
        audio_bytes = sum(p.stat().st_size for t in tasks for p in (spec.prepared[t.label] / "audio").rglob("*.bin"))
        # Embeddings larger than 64x the audio (and 1 GiB) mean a runaway writer, not an encoder.
        cap = max(64 * audio_bytes, 1024**3)
        clock = {"start": time.monotonic(), "done": 0}

        def watch(_container: Any) -> tuple[Outcome, str] | None:
            # Each task gets the stage's wall clock, counted from the end of the one before.
            done = sum((d / ENCODE_DONE).exists() for d in dirs)
            if done != clock["done"]:
                clock.update(done=done, start=time.monotonic())
            if time.monotonic() - clock["start"] > limit:
                return Outcome.TIMEOUT, f"killed: a task passed the encode stage's wall clock of {limit:g} s"
            if sum(directory_size(d) for d in dirs) > cap:
                return Outcome.OUTPUT_LIMIT, f"killed: embeddings passed their cap of {cap} B"
            return None

        run = RunSpec(stage=Stage.ENCODE, image=spec.image, workdir=SUBMISSION_SRC, gpu_uuid=spec.gpu,
                      command=agent_command("encode", "--submission", SUBMISSION_SRC, "--encoder",
                                            spec.submission.encoder.spec, "--jobs", "/jobs/jobs.json"),
                      mounts=tuple(mounts), wall_clock_s=limit * len(tasks) + 60,
                      env={"HF_HOME": "/cache/huggingface", "TORCH_HOME": "/cache/torch", **OFFLINE_ENV})
        result = run_stage(client, spec.profile, run, spec.log_dir / f"encode-{attempt}.log", watch=watch)
    result.raise_for_infra()
    return _verdicts(spec, tasks, dirs, result)


def _verdicts(spec: EncodeSpec, tasks: list[TaskRef], dirs: list[Path], result: RunResult) -> dict[str, Encoded | None]:
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
                batch = read_header(audio_header)["shape"][0]
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
