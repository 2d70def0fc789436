"""The compute node's side of the Slurm backend: one array task works on one submission.

`aecc worker --batch FILE --index $SLURM_ARRAY_TASK_ID` (the line the batch script execs) runs
`run_job` on a node with a Docker engine: it reads the batch file the submit host wrote, works on
its one submission with the local backend's `Worker` (same stages, profile, seeds), and records
where and how it ran as SCHEDULER events in the journal. It shares nothing with the submit host but
files on the shared file system (`harness.bulk.backends.slurm.batch`), so it lives apart from it.

Jobs that die, are requeued or run twice leave the journal consistent because the journal already
is: a submission is worked on only under its lease (a requeued job on the same host takes its dead
predecessor's lease at once, elsewhere once it expires; a job that finds the lease held by a live
job waits for it), stages done are never redone, and a job that finds its submission final exits 0
without touching the engine.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.bulk.backends.slurm.batch import JOB_FIELDS, BatchFile, SlurmState, exit_code, final_for, poll_seconds
from harness.errors import InfraError, UsageError
from harness.journal import EventKind, Journal, now_iso
from harness.pipelines.runner import StageRunner


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
                StageRunner(journal, sha).errored(exc)
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
    from harness.bulk.run import Worker, options_for, planned_from_journal
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
    worker = Worker(client, spec, options_for(spec, batch.build_options()), progress=lambda s, m: say(f"{s[:12]} {m}"),
                    signer=spec.signer(), in_flight=1)
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


__all__ = ["JobEnvironment", "run_job"]
