"""The Slurm backend: one array task per submission on an existing cluster, same journal, same results.

Academic organizers most often have a Slurm cluster, not a spare GPU machine. A batch goes there in
two halves that share nothing but files on the cluster's shared file system (RESULTS and the inbox):

- the submit step (`submit`, on a login node: no engine needed) reads the inbox and runs intake
  exactly as the local backend does (`plan_batch`), writes `RESULTS/slurm/<batch>.json` (the
  `BatchSpec`, the resolved build options, the sha256s to run, in array order) and
  `RESULTS/slurm/<batch>.sbatch`, and calls `sbatch --array=0-(n-1)%N --requeue`. Submissions that are
  final (done, excluded, superseded) or still queued in an earlier job are not submitted again.
- each array task (`run_job`, `aecc worker --batch FILE --index $SLURM_ARRAY_TASK_ID`) works on its
  one submission with the local backend's `Worker` (same stages, profile, seeds) on a node with a
  Docker engine, and records where and how it ran as SCHEDULER events in the journal.

Jobs that die, are requeued or run twice leave the journal consistent because the journal already
is: a submission is worked on only under its lease (a requeued job on the same host takes its dead
predecessor's lease at once, elsewhere once it expires; a job that finds the lease held by a live
job waits for it), stages done are never redone, and a job that finds its submission final exits 0
without touching the engine.

Where jobs stand comes from the journal, refreshed from `squeue` when it answers (`live_schedulers`):
no accounting database (sacct) is needed. A job `squeue` no longer lists that never recorded an end
is shown as GONE (cancelled while pending, or its node died); the same `aecc score` command submits
its submission again.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import math
import os
import shlex
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from harness import __version__
from harness.errors import InfraError, UsageError
from harness.journal import (
    EventKind,
    Journal,
    SubmissionRecord,
    SubmissionState,
    now_iso,
    read_events,
    reduce,
)

#: where batch files, batch scripts and job logs go, under RESULTS
BATCH_DIR = "slurm"
#: seconds between two looks at squeue and the journal while waiting (`--wait`, a job waiting for a lease)
POLL_ENV = "AECC_SLURM_POLL_S"
#: environment variables a job gets from the submit host as they were there (besides AECC_HOME and PATH)
PASSED_PREFIXES = ("AECC_", "DOCKER_")
SQUEUE_TIMEOUT_S = 20.0
#: what a job records about itself; a new submission clears them (scheduler events are merged, not replaced)
JOB_FIELDS = ("job_id", "array_job_id", "slurm_job_id", "node", "pid", "gpus", "started", "ended", "exit_code",
              "note", "reason", "submission_state")
BATCH_SCHEMA = 1


class SlurmState(str, enum.Enum):
    """A job's state as squeue spells it (JOB_STATE_CODES of slurm.h), plus two of the harness's own."""

    PENDING = "PENDING"
    CONFIGURING = "CONFIGURING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    SUSPENDED = "SUSPENDED"
    STOPPED = "STOPPED"
    SIGNALING = "SIGNALING"
    STAGE_OUT = "STAGE_OUT"
    RESIZING = "RESIZING"
    REQUEUED = "REQUEUED"
    REQUEUE_HOLD = "REQUEUE_HOLD"
    REQUEUE_FED = "REQUEUE_FED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    SPECIAL_EXIT = "SPECIAL_EXIT"
    REVOKED = "REVOKED"
    #: the harness's: sbatch refused the batch (its reason is recorded beside)
    SUBMIT_FAILED = "SUBMIT_FAILED"
    #: the harness's: squeue no longer lists the job and it never recorded an end
    GONE = "GONE"
    #: a state a newer Slurm invented; shown as squeue printed it in `slurm_state`
    OTHER = "OTHER"

    @classmethod
    def parse(cls, text: str) -> "SlurmState":
        try:
            return cls(text.strip().split()[0].upper())
        except (ValueError, IndexError):
            return cls.OTHER

    @property
    def active(self) -> bool:
        """The job may still run (or is running): waiting for the batch must go on."""
        return self in _ACTIVE


_ACTIVE = frozenset({SlurmState.PENDING, SlurmState.CONFIGURING, SlurmState.RUNNING, SlurmState.COMPLETING,
                     SlurmState.SUSPENDED, SlurmState.STOPPED, SlurmState.SIGNALING, SlurmState.STAGE_OUT,
                     SlurmState.RESIZING, SlurmState.REQUEUED, SlurmState.REQUEUE_HOLD, SlurmState.REQUEUE_FED,
                     SlurmState.OTHER})


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
class BatchFile:
    """What every array task of one batch reads: the same spec and build options on every node, and
    which submission each array index works on."""

    batch_id: str
    created: str
    harness: str
    spec: Mapping[str, Any]  # `BatchSpec.to_dict()`, with paths absolute
    build: Mapping[str, Any]  # the resolved `BuildOptions` of the submit host, as plain data
    submissions: tuple[str, ...]  # sha256 per array index
    environment: Mapping[str, str]  # exported by the batch script
    sbatch: tuple[str, ...] = ()  # the command that submitted it
    job_id: str | None = None  # the array job's id, once sbatch has answered

    @staticmethod
    def directory(results: Path) -> Path:
        return Path(results) / BATCH_DIR

    @property
    def path(self) -> Path:
        return self.directory(Path(self.spec["out"])) / f"{self.batch_id}.json"

    @property
    def script(self) -> Path:
        return self.path.with_suffix(".sbatch")

    def to_dict(self) -> dict:
        return {"schema": BATCH_SCHEMA, "batch_id": self.batch_id, "created": self.created, "harness": self.harness,
                "spec": dict(self.spec), "build": dict(self.build), "submissions": list(self.submissions),
                "environment": dict(self.environment), "sbatch": list(self.sbatch), "job_id": self.job_id}

    def write(self) -> Path:
        """Written by rename; private (index URLs in the build options may carry credentials)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.to_dict(), fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        return self.path

    @classmethod
    def read(cls, path: Path) -> "BatchFile":
        """Raises UsageError when the file is missing or not a batch file of this harness."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            if data.get("schema") != BATCH_SCHEMA:
                raise ValueError(f"schema {data.get('schema')!r}")
            return cls(batch_id=data["batch_id"], created=data["created"], harness=data["harness"], spec=data["spec"],
                       build=data["build"], submissions=tuple(data["submissions"]),
                       environment=data.get("environment") or {}, sbatch=tuple(data.get("sbatch") or ()),
                       job_id=data.get("job_id"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"{path}: not a readable batch file", expected=f"RESULTS/{BATCH_DIR}/<batch>.json written "
                             "by `aecc score --backend slurm`", found=f"{type(exc).__name__}: {exc}",
                             fix="check the path (the batch file must be on a file system this node shares)") from None

    def batch_spec(self) -> Any:
        from harness.bulk.run import BatchSpec

        return BatchSpec.from_dict(dict(self.spec))

    def build_options(self) -> Any:
        from harness.layers.options import BuildOptions

        data = dict(self.build)
        data["ca_bundle"] = Path(data["ca_bundle"]) if data.get("ca_bundle") else None
        data["pip_extra_index_urls"] = tuple(data.get("pip_extra_index_urls") or ())
        data["pip_trusted_hosts"] = tuple(data.get("pip_trusted_hosts") or ())
        return BuildOptions(**data)


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


@dataclasses.dataclass(frozen=True)
class QueueRow:
    """One array task as squeue lists it."""

    job_id: str  # "<array job id>_<task id>" (or a plain id)
    state: SlurmState
    raw_state: str
    nodes: str
    reason: str


# --- the submit step ------------------------------------------------------------------------------------


def submit(spec: Any, build_options: Any, options: SlurmOptions, *,
           progress: Callable[[str, str], None] = lambda sha, message: None,
           say: Callable[[str], None] = lambda message: None) -> Submitted:
    """Plan the batch on this host (no engine) and put what still needs work on the cluster.

    Raises:
        UsageError: bad arguments, inputs, key or profile, before anything is submitted.
        InfraError: sbatch is missing or refused the batch (the reason is recorded in the journal too).
    """
    from harness.bulk.run import _options, _signer, plan_batch
    from harness.sandbox.profiles import load_profile

    profile = load_profile(spec.profile)  # a bad profile is a usage error here, not in a hundred jobs
    _signer(spec.key)  # so is a bad key
    build_options = dataclasses.replace(build_options, submission_profile=spec.profile) \
        if build_options is not None else _options(spec, None)
    aecc = _aecc_executable()
    results = Path(spec.out).absolute()
    planned, refused, unusable, _errors = plan_batch(spec, progress=progress)
    state = reduce(read_events(results))
    live = squeue(_array_ids(r.scheduler for r in state.submissions.values())) or {}
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


# --- squeue ---------------------------------------------------------------------------------------------


def _array_ids(schedulers: Iterable[Mapping[str, Any]]) -> list[str]:
    ids = set()
    for s in schedulers:
        if s.get("backend") != "slurm":
            continue
        job = str(s.get("array_job_id") or str(s.get("job_id") or "").split("_")[0])
        if job.isdigit():
            ids.add(job)
    return sorted(ids, key=int)


def squeue(array_job_ids: Iterable[str]) -> dict[str, QueueRow] | None:
    """Every task of these jobs that squeue still lists (finished ones for MinJobAge, 300 s by
    default), by "<array>_<task>"; None when squeue cannot be asked (not installed, no controller)."""
    ids = [str(i) for i in array_job_ids]
    if not ids:
        return {}
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).is_file():
        return None  # squeue would look for a controller in DNS for a minute before giving up
    try:
        run = subprocess.run(["squeue", "--noheader", "--array", "--states=all", f"--jobs={','.join(ids)}",
                              "--format=%i|%T|%N|%r"], capture_output=True, text=True, timeout=SQUEUE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if run.returncode != 0:
        # Every id unknown to the controller (long finished) is an answer: none listed.
        return {} if "Invalid job id" in run.stderr else None
    rows = {}
    for line in run.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4:
            continue
        job_id, raw, nodes, reason = parts
        rows[job_id] = QueueRow(job_id, SlurmState.parse(raw), raw, nodes, reason)
    return rows


def live_schedulers(schedulers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """The journal's scheduler records (sha256 -> data) with each Slurm job's state as squeue says it
    now; the records unchanged where squeue does not answer. A job squeue no longer lists that never
    recorded an end (a worker records COMPLETED, FAILED or CANCELLED) is GONE."""
    out = {sha: dict(s) for sha, s in schedulers.items()}
    rows = squeue(_array_ids(out.values()))
    if rows is None:
        return out
    for data in out.values():
        if data.get("backend") != "slurm" or not data.get("job_id"):
            continue
        row = rows.get(str(data["job_id"]))
        if row is not None:
            data.update(state=row.state.value, reason=row.reason, squeue=now_iso())
            if row.state is SlurmState.OTHER:
                data["slurm_state"] = row.raw_state
            if row.nodes and row.nodes != "(null)":
                data["node"] = row.nodes
        elif SlurmState.parse(str(data.get("state") or "")) in (SlurmState.PENDING, SlurmState.RUNNING):
            data.update(state=SlurmState.GONE.value, squeue=now_iso(),
                        reason="not in squeue and no end recorded: cancelled while pending, or its node failed; "
                               "the same `aecc score` command submits it again")
    return out


# --- waiting --------------------------------------------------------------------------------------------


def final_for(record: SubmissionRecord | None, *, rescore: bool, since: str) -> bool:
    """The submission needs no more work from this batch: final, and (for a rescore) final since the
    batch was created, not only from an earlier run."""
    if record is None or not record.state.final:
        return False
    return not (rescore and record.state is SubmissionState.DONE and record.state_ts < since)


def exit_code(results: Path, shas: Iterable[str], refused: int) -> int:
    """As the local backend's: 0 every submission scored in full; 1 any excluded, refused at intake or
    with a failed task; 2 any left with an infrastructure error or not finished."""
    state = reduce(read_events(Path(results)))
    code = 1 if refused else 0
    for sha in shas:
        record = state.submissions.get(sha)
        if record is None or record.state is SubmissionState.ERROR or not record.state.final:
            return 2
        if record.state is SubmissionState.EXCLUDED:
            code = 1
        elif record.state is SubmissionState.DONE and record.detail.get("status") != "complete":
            code = 1
    return code


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
        jobs = _array_ids(state.submissions[sha].scheduler for sha in shas)
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


# --- the job's side -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JobEnvironment:
    """Where this process runs, as Slurm told it (the ids None outside a Slurm job)."""

    node: str
    job_id: str | None
    array_job_id: str | None
    array_task_id: str | None
    restart_count: int
    gpus: str | None

    @classmethod
    def current(cls, environ: Mapping[str, str] = os.environ) -> "JobEnvironment":
        return cls(node=environ.get("SLURMD_NODENAME") or socket.gethostname(), job_id=environ.get("SLURM_JOB_ID"),
                   array_job_id=environ.get("SLURM_ARRAY_JOB_ID"), array_task_id=environ.get("SLURM_ARRAY_TASK_ID"),
                   restart_count=int(environ.get("SLURM_RESTART_COUNT") or 0),
                   gpus=environ.get("SLURM_JOB_GPUS") or environ.get("SLURM_STEP_GPUS") or None)

    def record(self) -> dict:
        data: dict[str, Any] = {"node": self.node, "slurm_job_id": self.job_id, "restart_count": self.restart_count,
                                "gpus": self.gpus, "pid": os.getpid()}
        if self.array_job_id and self.array_task_id is not None:
            data.update(job_id=f"{self.array_job_id}_{self.array_task_id}", array_job_id=self.array_job_id,
                        array_task_id=int(self.array_task_id))
        return data


def run_job(batch_path: Path, index: int | None, *,
            say: Callable[[str], None] = lambda message: print(message, flush=True)) -> int:
    """One array task: the submission at `index` of the batch, with the local backend's Worker.

    Returns the exit code (0 scored in full or nothing left to do, 1 the submission was excluded or
    has a failed task, 2 infrastructure). SIGTERM (scancel, requeue, preemption, time limit) stops
    the stages, removes their containers, releases the lease and records CANCELLED.
    """
    from harness.sandbox.run import STOP

    batch = BatchFile.read(batch_path)
    where = JobEnvironment.current()
    if index is None:
        if where.array_task_id is None:
            raise UsageError("which submission?", expected="--index N or $SLURM_ARRAY_TASK_ID", found="neither",
                             fix=f"pass --index (0 to {len(batch.submissions) - 1})")
        index = int(where.array_task_id)
    if not 0 <= index < len(batch.submissions):
        raise UsageError(f"--index {index} is outside the batch", expected=f"0 to {len(batch.submissions) - 1}",
                         found=str(index))
    sha = batch.submissions[index]
    spec = batch.batch_spec()
    results = Path(spec.out)
    rescore = spec.settings.rescore
    poll = poll_seconds(5.0)
    journal = Journal(results)  # the scheduler events; the Worker writes the stages with a writer of its own

    def scheduler(state: SlurmState, **data: Any) -> None:
        journal.append(EventKind.SCHEDULER, sha256=sha, data={"backend": "slurm", "batch": batch.batch_id,
                                                              "state": state.value, **data})

    try:
        say(f"{sha[:12]} batch {batch.batch_id} index {index} on {where.node} (job {where.job_id}, "
            f"restart {where.restart_count})")
        if final_for(journal.state().submissions.get(sha), rescore=rescore, since=batch.created):
            scheduler(SlurmState.RUNNING, **{**dict.fromkeys(JOB_FIELDS), **where.record(), "started": now_iso()})
            scheduler(SlurmState.COMPLETED, exit_code=0, ended=now_iso(), note="final already: nothing to do")
            say(f"{sha[:12]} is final already: nothing to do")
            return 0
        scheduler(SlurmState.RUNNING, **{**dict.fromkeys(JOB_FIELDS), **where.record(), "started": now_iso()})
        try:
            code = _work_on(batch, spec, sha, where, journal, poll, say)
        except KeyboardInterrupt:
            scheduler(SlurmState.CANCELLED, exit_code=None, ended=now_iso(),
                      note="stopped by a signal (scancel, requeue, preemption or the time limit)")
            raise
        except Exception as exc:  # recorded as the job's failure, then reported as usual
            record = journal.state().submissions.get(sha)
            if isinstance(exc, InfraError) and not (record and record.state.final):
                # Never the submission's failure: left `error`, so that the next submission runs it again.
                journal.submission(sha, SubmissionState.ERROR, reason=exc.summary, found=exc.found,
                                   log=str(exc.log_path) if exc.log_path else None)
            scheduler(SlurmState.FAILED, exit_code=getattr(exc, "exit_code", 2), ended=now_iso(),
                      note=str(getattr(exc, "summary", exc))[:500])
            raise
        record = journal.state().submissions.get(sha)
        scheduler(SlurmState.COMPLETED if code == 0 else SlurmState.FAILED, exit_code=code, ended=now_iso(),
                  submission_state=record.state.value if record else None, note=None)
        return code
    finally:
        journal.close()
        STOP.clear()


def _work_on(batch: BatchFile, spec: Any, sha: str, where: JobEnvironment, journal: Journal, poll: float,
             say: Callable[[str], None]) -> int:
    from harness.bulk.run import Worker, _options, _signer, planned_from_journal
    from harness.sandbox.cleanup import cleanup
    from harness.sandbox.profiles import load_profile
    from harness.sandbox.run import STOP

    planned = planned_from_journal(spec, sha)  # its ZIP read again from the shared file system
    if load_profile(spec.profile).gpu is not None and spec.gpu is None and where.gpus:
        # Docker does not see Slurm's device cgroup: pin the sandboxes to the GPU Slurm gave this job.
        spec = dataclasses.replace(spec, gpu=where.gpus.split(",")[0])
    from harness.sandbox import engine

    client = engine.connect()
    cleanup(client)  # containers of a dead predecessor on this node (a requeued job, a killed run)
    worker = Worker(client, spec, _options(spec, batch.build_options()), progress=lambda s, m: say(f"{s[:12]} {m}"),
                    signer=_signer(spec.key), in_flight=1)
    try:
        waited = False
        while True:
            held = worker.leases.acquire(sha)
            # Final is checked with the lease in hand too: its holder may have finished it and let go.
            if final_for(journal.state().submissions.get(sha), rescore=spec.settings.rescore, since=batch.created):
                if held:
                    worker.leases.release(sha)
                say(f"{sha[:12]} was finished by the job that held it: nothing to do")
                return 0
            if held:
                break
            if not waited:
                holder = worker.leases.holder(sha) or {}
                say(f"{sha[:12]} is held by {holder.get('host')} pid {holder.get('pid')}: waiting for it to finish "
                    "or for its lease to expire")
                waited = True
            if STOP.wait(poll):
                raise KeyboardInterrupt("stopped")
        errors: dict[str, Exception] = {}
        worker.work([planned], errors)
    finally:
        worker.close()
    return exit_code(Path(spec.out), [sha], 0)


def poll_seconds(default: float = 15.0) -> float:
    """`AECC_SLURM_POLL_S`, else the default."""
    value = os.environ.get(POLL_ENV)
    try:
        return float(value) if value else default
    except ValueError:
        raise UsageError(f"{POLL_ENV} is not a number", expected="seconds, e.g. 15", found=repr(value)) from None


__all__ = ["BatchFile", "JobEnvironment", "QueueRow", "SlurmOptions", "SlurmState", "Submitted", "exit_code",
           "final_for", "live_schedulers", "run_job", "squeue", "submit", "wait"]
