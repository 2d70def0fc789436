"""What the submit host and the compute nodes share: the batch file, the job states, the end of a submission.

The two sides of the Slurm backend (`submit_host` on a login node, `node` in each array task) run on
different machines and share nothing but files on the cluster's shared file system. This module is
that contract: the batch file one side writes and the other reads (`BatchFile`), the states a job is
recorded in (`SlurmState`, `JOB_FIELDS`), when a submission needs no more work (`final_for`) and
what that means as an exit code (`exit_code`), and the poll interval both sides wait with. Keeping it
apart lets either side change without reading the other's code.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.errors import UsageError
from harness.journal import SubmissionRecord, SubmissionState, read_events, reduce
from harness.safeio import write_atomic

#: where batch files, batch scripts and job logs go, under RESULTS
BATCH_DIR = "slurm"
#: seconds between two looks at squeue and the journal while waiting (`--wait`, a job waiting for a lease)
POLL_ENV = "AECC_SLURM_POLL_S"
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
        return write_atomic(self.path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", mode=0o600)

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


def poll_seconds(default: float = 15.0) -> float:
    """`AECC_SLURM_POLL_S`, else the default."""
    value = os.environ.get(POLL_ENV)
    try:
        return float(value) if value else default
    except ValueError:
        raise UsageError(f"{POLL_ENV} is not a number", expected="seconds, e.g. 15", found=repr(value)) from None


__all__ = ["BATCH_DIR", "BATCH_SCHEMA", "JOB_FIELDS", "POLL_ENV", "BatchFile", "SlurmState", "exit_code", "final_for",
           "poll_seconds"]
