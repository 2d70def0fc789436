"""The submit host's side of the Slurm backend: plan the batch, put it on the cluster, wait for it.

Runs on a login node, where there is no Docker engine: `submit` reads the inbox and runs intake
exactly as the local backend does (`plan_batch`), writes `RESULTS/slurm/<batch>.json` (the
`BatchSpec`, the resolved build options, the sha256s to run, in array order) and
`RESULTS/slurm/<batch>.sbatch`, records every job PENDING in the journal and calls
`sbatch --array=0-(n-1)%N --requeue`. Submissions that are final (done, excluded, superseded) or
still queued in an earlier job are not submitted again. `wait` (`aecc score --wait`) follows the
batch until every job has ended. What each array task then does is `harness.bulk.backends.slurm.node`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from harness import __version__
from harness.bulk.backends.slurm.batch import JOB_FIELDS, POLL_ENV, BatchFile, SlurmState, exit_code, final_for
from harness.bulk.backends.slurm.queue import QueueRow, array_ids, squeue
from harness.errors import InfraError, UsageError
from harness.journal import EventKind, Journal, SubmissionRecord, SubmissionState, now_iso, read_events, reduce

#: environment variables a job gets from the submit host as they were there (besides AECC_HOME and PATH)
PASSED_PREFIXES = ("AECC_", "DOCKER_")


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """How the batch is put on the cluster (`aecc score --backend slurm ...`)."""

    partition: str | None = None
    #: GRES per job; None: `gpu:1` when the profile has a GPU, none otherwise; "" or "none": none
    gres: str | None = None
    array_limit: int = 4  # array tasks running at once (`%N`)
    sbatch_args: tuple[str, ...] = ()  # more sbatch options, after the harness's own (so they win)
    wait: bool = False
    poll_s: float = 15.0

    def __post_init__(self) -> None:
        if self.array_limit < 1:
            raise UsageError("--array-limit must be at least 1", expected=">= 1", found=str(self.array_limit))
        if self.poll_s <= 0:
            raise UsageError(f"{POLL_ENV} must be positive", expected="seconds > 0", found=str(self.poll_s))
        for arg in self.sbatch_args:
            if arg.split("=", 1)[0] in ("--array", "-a", "--parsable", "--wrap"):
                raise UsageError(f"--sbatch-arg {arg}: the harness sets this itself", expected="any other option",
                                 found=arg, fix="use --array-limit for the throttle; drop the argument")

    def resolved_gres(self, profile_has_gpu: bool) -> str | None:
        if self.gres is None:
            return "gpu:1" if profile_has_gpu else None
        return None if self.gres.strip().lower() in ("", "none") else self.gres.strip()


@dataclasses.dataclass(frozen=True)
class Submitted:
    """What the submit step did."""

    results: Path
    batch: BatchFile | None  # None: nothing needed submitting
    planned: tuple[str, ...]  # every submission of the inbox (sha256), submitted or not
    skipped: Mapping[str, str]  # sha256 -> why it was not submitted again
    refused: int
    unusable: int

    @property
    def job_id(self) -> str | None:
        return self.batch.job_id if self.batch else None


# --- the submit step ------------------------------------------------------------------------------------


def submit(spec: Any, build_options: Any, options: SlurmOptions, *,
           progress: Callable[[str, str], None] = lambda sha, message: None,
           say: Callable[[str], None] = lambda message: None) -> Submitted:
    """Plan the batch on this host (no engine) and put what still needs work on the cluster.

    Raises:
        UsageError: bad arguments, inputs, key or profile, before anything is submitted.
        InfraError: sbatch is missing or refused the batch (the reason is recorded in the journal too).
    """
    from harness.bulk.run import options_for, plan_batch
    from harness.sandbox.profiles import load_profile

    profile = load_profile(spec.profile)  # a bad profile is a usage error here, not in a hundred jobs
    spec.signer()  # so is a bad key
    build_options = dataclasses.replace(build_options, submission_profile=spec.profile) \
        if build_options is not None else options_for(spec, None)
    aecc = _aecc_executable()
    results = Path(spec.out).absolute()
    planned, refused, unusable, _errors = plan_batch(spec, progress=progress)
    state = reduce(read_events(results))
    live = squeue(array_ids(r.scheduler for r in state.submissions.values())) or {}
    todo: list[str] = []
    skipped: dict[str, str] = {}
    for p in planned:
        sha = p.submission.sha256
        record = state.submissions.get(sha)
        why = _why_not(p.superseded_by, record, spec.settings.rescore, live)
        if why:
            skipped[sha] = why
            progress(sha, f"not submitted: {why}")
        else:
            todo.append(sha)
    everything = tuple(p.submission.sha256 for p in planned)
    if not todo:
        return Submitted(results, None, everything, skipped, refused, unusable)
    batch = BatchFile(batch_id=_batch_id(), created=now_iso(), harness=__version__,
                      spec=_portable(spec.to_dict()), build=_plain(dataclasses.asdict(build_options)),
                      submissions=tuple(todo), environment=_job_environment(aecc))
    log_dir = batch.path.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    directives = _directives(batch, options, profile, log_dir)
    command = ("sbatch", "--parsable", *options.sbatch_args, str(batch.script))
    batch = dataclasses.replace(batch, sbatch=command)
    batch.write()
    _write_script(batch, directives, aecc)
    journal = Journal(results)
    try:
        gres = options.resolved_gres(profile.gpu is not None)
        # Recorded before sbatch: a job that starts at once records RUNNING after these, never before.
        for index, sha in enumerate(todo):
            journal.append(EventKind.SCHEDULER, sha256=sha, data={
                **dict.fromkeys(JOB_FIELDS), "backend": "slurm", "batch": batch.batch_id, "array_task_id": index,
                "state": SlurmState.PENDING.value, "submitted": now_iso(), "partition": options.partition, "gres": gres,
                "restart_count": 0})
        try:
            job_id = _sbatch(command)
        except InfraError as exc:
            for sha in todo:
                journal.append(EventKind.SCHEDULER, sha256=sha, data={"state": SlurmState.SUBMIT_FAILED.value,
                                                                       "reason": exc.summary})
            raise
        batch = dataclasses.replace(batch, job_id=job_id)
        batch.write()
        # No state here: a job that already started has recorded RUNNING, which must stand.
        for index, sha in enumerate(todo):
            journal.append(EventKind.SCHEDULER, sha256=sha, data={"job_id": f"{job_id}_{index}",
                                                                  "array_job_id": job_id})
    finally:
        journal.close()
    say(f"submitted {len(todo)} job(s) as Slurm array {job_id} (at most {options.array_limit} at once"
        + (f", partition {options.partition}" if options.partition else "")
        + (f", gres {gres}" if gres else "") + f"); batch file {batch.path}")
    return Submitted(results, batch, everything, skipped, refused, unusable)


def _why_not(superseded_by: str | None, record: SubmissionRecord | None, rescore: bool,
             live: Mapping[str, QueueRow]) -> str | None:
    if superseded_by:
        return f"superseded by {superseded_by[:12]}"
    if record is None:
        return None
    if record.state is SubmissionState.SUPERSEDED:
        return "superseded"
    if record.state is SubmissionState.EXCLUDED:
        return f"excluded earlier at {record.detail.get('stage')}"
    if record.state is SubmissionState.DONE and not rescore:
        return "done earlier"
    job = record.scheduler.get("job_id")
    row = live.get(str(job)) if job else None
    if row is not None and row.state.active:
        return f"still queued as job {job} ({row.state.value})"
    return None


def _batch_id() -> str:
    return f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _portable(spec: dict) -> dict:
    """The spec with every path absolute, so that a job started in another directory reads the same."""
    spec = json.loads(json.dumps(spec))
    profile = Path(spec["profile"])
    if profile.suffix == ".json" or profile.exists():
        spec["profile"] = str(profile.absolute())
    if spec.get("key"):
        spec["key"] = str(Path(spec["key"]).absolute())
    for task in spec["settings"]["tasks"]:
        if task.get("file"):
            task["file"] = str(Path(task["file"]).absolute())
    return spec


def _plain(data: Mapping[str, Any]) -> dict:
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in data.items()}


def _aecc_executable() -> Path:
    """The `aecc` of this installation: the jobs run the very same one (the nodes must share it)."""
    here = Path(sys.executable).parent / "aecc"
    found = here if here.is_file() else Path(shutil.which("aecc") or "")
    if not found.name or not found.is_file():
        raise UsageError("the `aecc` command of this installation was not found", expected=f"{here} or `aecc` on PATH",
                         found="neither", fix="install the harness (`pip install -e .` or `make venv`) and run "
                                              "`aecc score` from that environment")
    return found.absolute()


def _job_environment(aecc: Path) -> dict[str, str]:
    """What the batch script exports: the jobs' processes start from the Slurm daemon's (or the
    site's) environment, not this shell's, so the harness's home, PATH and settings travel explicitly."""
    from harness import paths

    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_PREFIXES)}
    env["AECC_HOME"] = str(paths.home().absolute())
    bins = [str(aecc.parent), str(Path(sys.executable).parent)]
    env["PATH"] = ":".join(dict.fromkeys([*bins, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                                          "/sbin", "/bin"]))
    return env


def _directives(batch: BatchFile, options: SlurmOptions, profile: Any, log_dir: Path) -> list[str]:
    n = len(batch.submissions)
    out = [f"--job-name=aecc-{batch.batch_id}", f"--array=0-{n - 1}%{options.array_limit}", "--requeue",
           f"--output={log_dir}/%A_%a.out", "--open-mode=append",
           # Docker's containers run outside the job's cgroup: the job reserves what the sandbox may use,
           # so that Slurm does not put more sandboxes on a node than it holds.
           f"--cpus-per-task={max(1, math.ceil(profile.cpus))}",
           f"--mem={max(1, profile.memory_bytes // 2**20)}M"]
    if options.partition:
        out.append(f"--partition={options.partition}")
    gres = options.resolved_gres(profile.gpu is not None)
    if gres:
        out.append(f"--gres={gres}")
    return out


def _write_script(batch: BatchFile, directives: list[str], aecc: Path) -> Path:
    lines = ["#!/bin/bash",
             f"# AECC batch {batch.batch_id}: array task i works on submission i of {batch.path.name}.",
             "# Resubmitting this script (sbatch it again) redoes nothing already done.",
             *[f"#SBATCH {d}" for d in directives],
             "set -euo pipefail",
             *[f"export {k}={shlex.quote(v)}" for k, v in sorted(batch.environment.items())],
             f"exec {shlex.quote(str(aecc))} worker --batch {shlex.quote(str(batch.path))} "
             '--index "${SLURM_ARRAY_TASK_ID:?this script runs as a Slurm array task}"', ""]
    fd = os.open(batch.script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines))
    return batch.script


def _sbatch(command: tuple[str, ...]) -> str:
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise InfraError("sbatch was not found", expected="Slurm's client commands (sbatch, squeue) on PATH",
                         found=f"PATH={os.environ.get('PATH', '')}",
                         fix="run `aecc score --backend slurm` on a submit (login) node of the cluster") from None
    except subprocess.TimeoutExpired:
        raise InfraError("sbatch did not answer", expected="an answer within 120 s", found="no answer",
                         fix="check the cluster (`sinfo`), then run the same command again") from None
    job = run.stdout.strip().split("\n")[-1].split(";")[0].strip() if run.stdout.strip() else ""
    if run.returncode != 0 or not job.isdigit():
        raise InfraError("sbatch refused the batch", expected="a job id from `sbatch --parsable`",
                         found=(run.stderr.strip() or run.stdout.strip() or f"exit {run.returncode}")[-2000:],
                         fix="fix the partition, GRES or --sbatch-arg (see `sinfo`), then run the same command "
                             "again: nothing was submitted")
    return job


# --- waiting --------------------------------------------------------------------------------------------


def wait(submitted: Submitted, options: SlurmOptions, *, say: Callable[[str], None]) -> int:
    """Until every job of the batch has ended (squeue) or, where squeue does not answer, every
    submission is final (journal); prints a line whenever the picture changes. Returns the exit code
    over every submission of the inbox, as the local backend's.

    With nothing submitted, waits for the jobs of earlier batches that still hold submissions."""
    from harness.sandbox.run import STOP

    batch = submitted.batch
    results = Path(submitted.results)
    if batch is not None:
        shas, jobs, since = list(batch.submissions), [batch.job_id] if batch.job_id else [], batch.created
        rescore = bool(batch.spec["settings"].get("rescore"))
    else:
        state = reduce(read_events(results))
        shas = [sha for sha, why in submitted.skipped.items() if why.startswith("still queued")]
        jobs = array_ids(state.submissions[sha].scheduler for sha in shas)
        since, rescore = "", False
    last = ""
    unreachable_said = False
    while shas:
        state = reduce(read_events(results))
        rows = squeue(jobs) if jobs else None
        records = {sha: state.submissions.get(sha) for sha in shas}
        finals = sum(final_for(r, rescore=rescore, since=since) for r in records.values())
        by_state: dict[str, int] = {}
        for r in records.values():
            key = r.state.value if r else "queued"
            by_state[key] = by_state.get(key, 0) + 1
        counts: dict[str, int] = {}
        for row in (rows or {}).values():
            counts[row.state.value] = counts.get(row.state.value, 0) + 1
        line = (f"{finals}/{len(shas)} final (" + ", ".join(f"{k} {v}" for k, v in sorted(by_state.items())) + ")"
                + ("; jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) if counts else ""))
        if line != last:
            say(line)
            last = line
        active = rows is not None and any(r.state.active for r in rows.values())
        if rows is None and not unreachable_said:
            say("squeue does not answer: waiting on the journal only")
            unreachable_said = True
        if finals == len(shas) and not active:
            break
        if rows is not None and not active:
            missing = [sha[:12] for sha, r in records.items() if not final_for(r, rescore=rescore, since=since)]
            say(f"every job has ended; not finished: {', '.join(missing)} "
                f"(see `aecc status {results}`; the same command submits them again)")
            break
        if STOP.wait(options.poll_s):
            raise KeyboardInterrupt("stopped")
    return exit_code(results, submitted.planned, submitted.refused)


__all__ = ["SlurmOptions", "Submitted", "submit", "wait"]
