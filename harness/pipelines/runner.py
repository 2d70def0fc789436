"""One submission's state changes, written in one place.

The journal (`harness.journal`) is the record a resumed, killed or shared run reads back: which
stage ran under which key, what became of it, where the submission stands. Every change to it for
one submission goes through a `StageRunner` bound to the journal and the submission's digest:

- the score pipeline (`harness.pipelines.score`): each stage running, done or failed, with its key
  and what it produced, and the step the submission is at (building, fetching, ...);
- the batch (`harness.bulk.run`), which the Slurm worker runs too: the end of a submission (done,
  excluded with the stage that excluded it, an infrastructure error that will be retried,
  superseded by a later ZIP from the same sender), and an intake refusal;
- the Slurm worker (`harness.bulk.backends.slurm.node`): an infrastructure error that reached the
  job itself.

So a state is written the same way whoever runs the submission, and the stage enum and the state
enums are the only names a state change takes.

`aecc validate` keeps no journal (it has no RESULTS folder): it reads the same stages' results
(`harness.stages.contract_run.ContractRun`) and writes none of this.
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.journal import Event, Journal, StageState, SubmissionState
from harness.stage_names import Stage


def _log(exc: HarnessError) -> str | None:
    return str(exc.log_path) if exc.log_path else None


class StageRunner:
    """The journal's writer for one submission."""

    def __init__(self, journal: Journal, sha256: str) -> None:
        self.journal = journal
        self.sha256 = sha256

    # -- the stages ------------------------------------------------------------------------------------------

    def running(self, stage: Stage, *, task: str | None = None, key: str | None = None, **data: Any) -> Event:
        return self.journal.stage(self.sha256, stage, StageState.RUNNING, task=task, key=key, **data)

    def done(self, stage: Stage, *, task: str | None = None, key: str | None = None, **data: Any) -> Event:
        return self.journal.stage(self.sha256, stage, StageState.DONE, task=task, key=key, **data)

    def failed(self, stage: Stage, *, reason: str, task: str | None = None, key: str | None = None,
               **data: Any) -> Event:
        """The submission's failure at this stage (never an infrastructure error's: those stay running
        and are retried)."""
        return self.journal.stage(self.sha256, stage, StageState.FAILED, task=task, key=key, reason=reason, **data)

    def ended(self, stage: Stage, ok: bool, *, task: str | None = None, key: str | None = None,
              **data: Any) -> Event:
        """Done when `ok`, else failed (`data` carries the reason)."""
        return self.journal.stage(self.sha256, stage, StageState.DONE if ok else StageState.FAILED, task=task,
                                  key=key, **data)

    # -- the submission -------------------------------------------------------------------------------------

    def enter(self, state: SubmissionState, **data: Any) -> Event:
        """The step the submission is at now (building, fetching, checking, preparing, encoding, scoring)."""
        if state.final:
            raise ValueError(f"{state.value} ends a submission: use finished, excluded or errored")
        return self.journal.submission(self.sha256, state, **data)

    def finished(self, status: str) -> Event:
        return self.journal.submission(self.sha256, SubmissionState.DONE, status=status)

    def excluded(self, stage: str, exc: HarnessError, **data: Any) -> Event:
        """Excluded by its own fault at `stage` (a Stage value, or `intake`/`score` for the steps around them)."""
        return self.journal.submission(self.sha256, SubmissionState.EXCLUDED, stage=stage, reason=exc.summary,
                                       found=exc.found, fix=exc.fix, log=_log(exc), **data)

    def errored(self, exc: HarnessError, **data: Any) -> Event:
        """An infrastructure error: not the submission's; left to be run again."""
        return self.journal.submission(self.sha256, SubmissionState.ERROR, reason=exc.summary, found=exc.found,
                                       log=_log(exc), **data)

    def superseded(self, by: str) -> Event:
        return self.journal.submission(self.sha256, SubmissionState.SUPERSEDED, superseded_by=by)
