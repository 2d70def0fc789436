"""Where Slurm jobs stand, as `squeue` says it: the live view over what the journal recorded.

A job records its own start and end in the journal, but one that is cancelled while pending or
whose node dies records nothing; only the controller knows. The submit step (not to submit a job
still queued again), `--wait` and `aecc status` all ask it the same way, so that question lives
here, on its own: no accounting database (sacct) is needed, and where `squeue` does not answer the
journal's records stand unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.bulk.backends.slurm.batch import SlurmState
from harness.journal import now_iso

SQUEUE_TIMEOUT_S = 20.0


@dataclasses.dataclass(frozen=True)
class QueueRow:
    """One array task as squeue lists it."""

    job_id: str  # "<array job id>_<task id>" (or a plain id)
    state: SlurmState
    raw_state: str
    nodes: str
    reason: str


def array_ids(schedulers: Iterable[Mapping[str, Any]]) -> list[str]:
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
    rows = squeue(array_ids(out.values()))
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


__all__ = ["QueueRow", "array_ids", "live_schedulers", "squeue"]
