"""One exception root for the harness, split by whose fault it is.

A submission failure (bad archive, contract violation, OOM, timeout) is the participant's to fix;
an infrastructure failure (engine down, image missing, disk full, harness bug) is the operator's.
The two are separate types so that no code path can record one as the other (DESIGN.md, "Trust
boundaries"). Every message carries what was expected, what was found, what to do next and,
where there is one, the log to read.
"""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """Root of every error the harness raises on purpose.

    Args:
        summary: one line saying what went wrong.
        expected: what the harness required.
        found: what it found instead.
        fix: the next step for the reader.
        log_path: where the full log is, if any.
    """

    #: process exit code the CLI uses for this class of error
    exit_code = 2

    def __init__(
        self,
        summary: str,
        *,
        expected: str | None = None,
        found: str | None = None,
        fix: str | None = None,
        log_path: Path | str | None = None,
    ) -> None:
        self.summary = summary
        self.expected = expected
        self.found = found
        self.fix = fix
        self.log_path = Path(log_path) if log_path is not None else None
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.summary]
        if self.expected is not None:
            lines.append(f"  expected: {self.expected}")
        if self.found is not None:
            lines.append(f"  found:    {self.found}")
        if self.fix is not None:
            lines.append(f"  next:     {self.fix}")
        if self.log_path is not None:
            lines.append(f"  log:      {self.log_path}")
        return "\n".join(lines)


class UsageError(HarnessError):
    """The operator asked for something malformed (bad flag, bad profile file, unknown name)."""


class ConfigError(UsageError):
    """A data file the harness reads (sandbox profile, task registry) is invalid."""


class InfraError(HarnessError):
    """The machine, engine or harness failed; never the submission's fault."""


class EngineUnavailable(InfraError):
    """The container engine does not answer, or lacks a feature the run needs."""


class GpuUnavailable(InfraError):
    """A GPU was required but none (or no NVIDIA container runtime) is usable."""


class ImageBuildError(InfraError):
    """A trusted image layer failed to build."""


class SubmissionError(HarnessError):
    """The submission is at fault: the participant can fix it. Exit code 1."""

    exit_code = 1


class IntakeError(SubmissionError):
    """The archive or folder was refused at intake."""


class BuildFailed(SubmissionError):
    """The submission's own requirements did not install in its build sandbox: the participant's to
    fix. Raised where the install failed (the untrusted layer's build), never re-typed later."""

    def __init__(self, summary: str, *, outcome: str = "failed", **kw):
        self.outcome = outcome
        super().__init__(summary, **kw)
