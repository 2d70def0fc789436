"""The contract checker's typed report: what `python -m checker.contract` writes as JSON.

Standard library only: this module is imported inside containers before torch, and its shape is
mirrored by `harness/schemas/check-report.schema.json`, against which the host validates every
report it reads (the report is written by a process that also runs submission code, so the host
treats it as untrusted data, never as proof).

Statuses, and whose fault they are:
- a check is `failed` when the submission breaks the contract, including when the submission's own
  code raises while being checked;
- the report is `failed` when its verdict (`checker.verdict`) is not ok: a `rule` or `scoring`
  check failed, or a `rule` check could not run; `advice` failures, warnings and skips do not fail;
- the report is `error` only when the checker itself could not do its job (a checker bug, a usage
  error by the host, `--device cuda` without a GPU): that is an infrastructure failure and must never
  be recorded as the submission's failure.

`complete` is false in the progressive copies written while checks run. Before each check that
runs submission code, the copy on disk gets a `failed` placeholder for that check, so a report
left with `complete: false` is already `failed` and names, in `in_progress`, the check the process
died in (OOM kill, timeout, `os._exit` in submission code). The host still decides with the
container's outcome: an infrastructure failure of the run outranks whatever the report says.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import tempfile
from typing import Any

from checker.jobs import level_of
from checker.verdict import Summary, summarise

SCHEMA_VERSION = 1

#: The report is read by the host under a size cap; everything we write stays well below it.
MAX_TEXT_CHARS = 4000


class CheckStatus(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    WARNING = "warning"
    SKIPPED = "skipped"


class ReportStatus(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # the checker could not do its job; not the submission's fault


class Phase(str, enum.Enum):
    CHECK = "check"
    FETCH = "fetch"


def clip_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Keep the tail of `text` (the end of a traceback is the informative part)."""
    text = str(text)
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


def to_jsonable(value: Any) -> Any:
    """Plain JSON data: NaN/Inf become strings (strict JSON has no such numbers), tuples lists."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return clip_text(repr(value), 500)


@dataclasses.dataclass
class CheckResult:
    """One clause of the contract, checked.

    Args:
        id: stable identifier (see `checker.contract`'s docstring); CI and the host key on it.
        status: passed, failed, warning or skipped.
        message: one or two sentences for the participant, in hear-validator's style.
        expected: what the contract requires (None when there is nothing to compare).
        found: what the encoder did instead.
        fix: what to change (None when passed).
        details: measurements and evidence (per-length frame counts, traceback tail, ...).
    """

    id: str
    status: CheckStatus
    message: str
    expected: str | None = None
    found: str | None = None
    fix: str | None = None
    details: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = CheckStatus(self.status)
        if not self.id:
            raise ValueError("check id cannot be empty")

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "status": self.status.value,
            "message": clip_text(self.message),
            "expected": None if self.expected is None else clip_text(self.expected, 1000),
            "found": None if self.found is None else clip_text(self.found, 1000),
            "fix": None if self.fix is None else clip_text(self.fix, 1000),
            "details": to_jsonable(self.details),
            **({"level": level.value} if (level := level_of(self.id)) is not None else {}),
        }


@dataclasses.dataclass
class CheckReport:
    """Everything one checker run found; `to_dict()` is what lands in report.json."""

    encoder_file: str
    encoder_class: str
    phase: Phase = Phase.CHECK
    checks: list[CheckResult] = dataclasses.field(default_factory=list)
    resources: dict = dataclasses.field(default_factory=lambda: {"peak_rss_bytes": None, "peak_cuda_bytes": None})
    timings: dict = dataclasses.field(default_factory=dict)
    throughput: dict = dataclasses.field(default_factory=dict)
    environment: dict = dataclasses.field(default_factory=dict)
    #: the encoder's attributes, each only once its check passed (the trusted stages need them)
    attributes: dict = dataclasses.field(default_factory=dict)
    error: str | None = None  # set only when the checker itself failed
    complete: bool = False
    in_progress: str | None = None
    schema_version: int = SCHEMA_VERSION

    def add(self, result: CheckResult) -> CheckResult:
        self.checks = [c for c in self.checks if c.id != result.id] + [result]
        return result

    def get(self, check_id: str) -> CheckResult | None:
        return next((c for c in self.checks if c.id == check_id), None)

    def verdict(self) -> Summary:
        """The one verdict (`checker.verdict`) on the checks so far."""
        return summarise([{"id": c.id, "status": c.status.value, "message": c.message, "fix": c.fix,
                           "expected": c.expected, "found": c.found} for c in self.checks],
                         error=None if self.error is None else "the contract checker itself failed",
                         # the fetch phase stops at the attributes: the forward's rule checks come later
                         expect_rule_checks=Phase(self.phase) is Phase.CHECK and bool(self.checks))

    @property
    def status(self) -> ReportStatus:
        """`failed` when a rule or scoring check failed (or a rule check could not run); advice
        alone never fails a report."""
        return self._status(self.verdict())

    def _status(self, verdict: Summary) -> ReportStatus:
        if self.error is not None:
            return ReportStatus.ERROR
        return ReportStatus.PASSED if verdict.ok else ReportStatus.FAILED

    def summary(self) -> dict[str, int]:
        counts = {s.value: 0 for s in CheckStatus}
        for c in self.checks:
            counts[c.status.value] += 1
        return counts

    def failed_ids(self) -> list[str]:
        return [c.id for c in self.checks if c.status is CheckStatus.FAILED]

    def to_dict(self) -> dict:
        verdict = self.verdict()  # once: the status follows from it
        # schema_version first: readers check it before anything else.
        return {
            "schema_version": self.schema_version,
            "status": self._status(verdict).value,
            "phase": Phase(self.phase).value,
            "complete": self.complete,
            "in_progress": self.in_progress,
            "error": None if self.error is None else clip_text(self.error),
            "encoder": {"file": self.encoder_file, "class": self.encoder_class},
            "summary": self.summary(),
            "checks": [c.to_dict() for c in self.checks],
            "resources": to_jsonable(self.resources),
            "timings": to_jsonable(self.timings),
            "throughput": to_jsonable(self.throughput),
            "environment": to_jsonable(self.environment),
            "attributes": to_jsonable(self.attributes),
            "verdict": verdict.to_dict(),
        }

    def write(self, path: str) -> None:
        """Write atomically (temporary file in the same folder, then rename).

        A reader never sees half a report, even if the process is killed mid-write.

        Raises:
            OSError: the folder is not writable.
        """
        data = json.dumps(self.to_dict(), indent=2, allow_nan=False, sort_keys=False) + "\n"
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
