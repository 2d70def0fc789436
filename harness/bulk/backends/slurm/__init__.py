"""The Slurm backend: one array task per submission on an existing cluster, same journal, same results.

Academic organizers most often have a Slurm cluster, not a spare GPU machine. A batch goes there in
two halves that share nothing but files on the cluster's shared file system (RESULTS and the inbox),
and so are two modules:

- `submit_host` (`submit`, on a login node: no engine needed) reads the inbox and runs intake
  exactly as the local backend does (`plan_batch`), writes `RESULTS/slurm/<batch>.json` (the
  `BatchSpec`, the resolved build options, the sha256s to run, in array order) and
  `RESULTS/slurm/<batch>.sbatch`, and calls `sbatch --array=0-(n-1)%N --requeue`. Submissions that are
  final (done, excluded, superseded) or still queued in an earlier job are not submitted again.
  `wait` follows the batch (`aecc score --wait`).
- `node` (`run_job`, `aecc worker --batch FILE --index $SLURM_ARRAY_TASK_ID`): each array task works
  on its one submission with the local backend's `Worker` (same stages, profile, seeds) on a node
  with a Docker engine, and records where and how it ran as SCHEDULER events in the journal.

What the two halves share (the batch file, the job states, when a submission is final, the exit
code) is `batch`; where jobs stand as `squeue` says it is `queue`.

Jobs that die, are requeued or run twice leave the journal consistent because the journal already
is: a submission is worked on only under its lease, stages done are never redone, and a job that
finds its submission final exits 0 without touching the engine (`node`).

Where jobs stand comes from the journal, refreshed from `squeue` when it answers (`live_schedulers`):
no accounting database (sacct) is needed. A job `squeue` no longer lists that never recorded an end
is shown as GONE (cancelled while pending, or its node died); the same `aecc score` command submits
its submission again.

This package re-exports what the CLI and the status view use, so that they import
`harness.bulk.backends.slurm` whichever side a name lives on.
"""

from __future__ import annotations

from harness.bulk.backends.slurm.batch import (
    BATCH_DIR,
    JOB_FIELDS,
    POLL_ENV,
    BatchFile,
    SlurmState,
    exit_code,
    final_for,
    poll_seconds,
)
from harness.bulk.backends.slurm.node import JobEnvironment, run_job
from harness.bulk.backends.slurm.queue import QueueRow, live_schedulers, squeue
from harness.bulk.backends.slurm.submit_host import SlurmOptions, Submitted, submit, wait

__all__ = ["BATCH_DIR", "JOB_FIELDS", "POLL_ENV", "BatchFile", "JobEnvironment", "QueueRow", "SlurmOptions",
           "SlurmState", "Submitted", "exit_code", "final_for", "live_schedulers", "poll_seconds", "run_job", "squeue",
           "submit", "wait"]
