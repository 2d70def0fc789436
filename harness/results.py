"""What the harness hands back: typed, frozen results, each with one `to_dict()` checked against its
versioned schema (`harness.schemas`) before it leaves the process.

- `ValidationReport`: the verdict of `aecc validate` on one submission, check by check.
- `TaskResult` / `ScoreResult`: one submission scored on its tasks (`result.json`).

A submission's failure and an infrastructure failure are different statuses everywhere here
(`Verdict.FAILED` vs `Verdict.ERROR`, `TaskOutcome.FAILED` vs `TaskOutcome.ERROR`): no code path can
record one as the other.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Any, Mapping, Sequence

from checker.jobs import Level, level_of
from checker.report import CheckStatus
from checker.verdict import Summary, summarise
from harness import schemas

__all__ = ["Check", "CheckStatus", "ResultStatus", "ScoreResult", "TaskOutcome", "TaskResult", "TrackA",
           "ValidationReport", "Verdict"]


class Verdict(str, enum.Enum):
    """How `aecc validate` ended; also its exit code."""

    PASSED = "passed"
    FAILED = "failed"  # the participant's to fix
    ERROR = "error"  # the machine's or the harness's: never the participant's

    @property
    def exit_code(self) -> int:
        return {Verdict.PASSED: 0, Verdict.FAILED: 1, Verdict.ERROR: 2}[self]


def _drop_none(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of a validation report: a step of the harness (intake, build, fetch, sandbox) or a
    check of the in-container contract checker, by its stable id."""

    id: str
    status: CheckStatus
    message: str
    expected: Any = None
    found: Any = None
    fix: str | None = None
    log: str | None = None
    details: Mapping[str, Any] | None = None
    #: what a failure costs; by default the id's level (`checker.jobs.CHECK_LEVELS`), None for the
    #: lines that report an infrastructure failure
    level: Level | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", CheckStatus(self.status))
        object.__setattr__(self, "level", Level(self.level) if self.level is not None else level_of(self.id))

    @classmethod
    def from_error(cls, check_id: str, exc: Any) -> "Check":
        """A failed step from a HarnessError: its summary, expected, found, fix and log."""
        return cls(check_id, CheckStatus.FAILED, exc.summary, expected=exc.expected, found=exc.found, fix=exc.fix,
                   log=str(exc.log_path) if exc.log_path else None)

    @classmethod
    def from_agent(cls, data: Mapping[str, Any], log: Path | str | None = None) -> "Check":
        """A check from the contract checker's (schema-valid) report; a failed one names the stage log
        that holds the whole traceback."""
        failed = CheckStatus(data["status"]) is CheckStatus.FAILED
        # The level is the host's, from the id: a report written beside submission code cannot
        # demote a rule check to advice.
        return cls(data["id"], data["status"], data["message"], expected=data.get("expected"),
                   found=data.get("found"), fix=data.get("fix"), details=data.get("details"),
                   log=str(log) if log is not None and failed else None)

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({"id": self.id, "status": self.status.value, "message": self.message,
                           "expected": self.expected, "found": self.found, "fix": self.fix, "log": self.log,
                           "details": dict(self.details) if self.details else None,
                           "level": self.level.value if self.level else None})


def summarise_checks(checks: Sequence[Check], *, error: str | None = None, strict: bool = False,
                     expect_rule_checks: bool | None = None) -> Summary:
    """The one verdict (`checker.verdict`) over the harness's checks."""
    return summarise([c.to_dict() for c in checks], error=error, strict=strict,
                     expect_rule_checks=expect_rule_checks)


@dataclasses.dataclass(frozen=True)
class ValidationReport:
    """`status` is ERROR when the run could not judge the submission; otherwise it follows the
    verdict over `checks` (`passed` exactly when the verdict exits 0), so no caller words it."""

    status: Verdict
    submission: Mapping[str, Any]
    profile: str
    checks: tuple[Check, ...]
    resources: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict)
    logs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    checker: Mapping[str, Any] | None = None
    strict: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", tuple(self.checks))
        status = Verdict(self.status)
        if status is not Verdict.ERROR:
            status = Verdict.PASSED if self.verdict.ok else Verdict.FAILED
        object.__setattr__(self, "status", status)

    @property
    def verdict(self) -> Summary:
        error = None
        if Verdict(self.status) is Verdict.ERROR:
            failed = [c for c in self.checks if c.status is CheckStatus.FAILED]
            error = next((c.message for c in failed if c.level is None), failed[-1].message if failed else "see the logs")
        # The pipeline lists what ran: a check stage that ended early adds the rule checks it never
        # reached as skipped (`harness.pipelines.validate`), so nothing is inferred here.
        return summarise_checks(self.checks, error=error, strict=self.strict, expect_rule_checks=False)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status is CheckStatus.FAILED]

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema_version": schemas.SCHEMA_VERSION,
            "status": self.status.value,
            "submission": dict(self.submission),
            "profile": self.profile,
            "checks": [c.to_dict() for c in self.checks],
            "resources": dict(self.resources),
            "timings": dict(self.timings),
            "logs": dict(self.logs),
        }
        if self.checker is not None:
            data["checker"] = dict(self.checker)
        data["verdict"] = self.verdict.to_dict()
        return schemas.validate("validation-report", data)


class TaskOutcome(str, enum.Enum):
    """What became of one task of one submission."""

    SCORED = "scored"
    FAILED = "failed"  # the submission's fault: the reason says which stage and limit
    ERROR = "error"  # infrastructure: data, engine, harness; never ranked as a value
    UNSUPPORTED = "unsupported"


class ResultStatus(str, enum.Enum):
    COMPLETE = "complete"  # every task scored
    PARTIAL = "partial"


@dataclasses.dataclass(frozen=True)
class TrackA:
    """Track A over its repeats: the mean is the score; each value, its seed and the spread are kept."""

    value: float | None
    values: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()
    std: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "TrackA | None":
        if not data:
            return None
        return cls(data.get("value"), tuple(data.get("values") or ()), tuple(data.get("seeds") or ()),
                   float(data.get("std") or 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "values": list(self.values), "seeds": list(self.seeds), "std": self.std}


@dataclasses.dataclass(frozen=True)
class TaskResult:
    task: str
    source: str
    outcome: TaskOutcome
    reason: str = ""
    metric: str | None = None
    track_a: float | None = None
    track_b: float | None = None
    weight: int | None = None
    track_a_detail: TrackA | None = None
    counts: Mapping[str, Any] | None = None
    mode: str | None = None
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict)
    encoder: str | None = None  # the encoder spec it was scored with: a rerun with another must not reuse it
    log: str | None = None  # the stage log of a failure, with the whole traceback
    #: X-ARES marks the task disabled (`TaskConfig.disabled`) and the harness scored it anyway
    xares_disabled_overridden: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", TaskOutcome(self.outcome))

    @classmethod
    def scored(cls, task: str, source: str, answer: Mapping[str, Any], **kw: Any) -> "TaskResult":
        """From the score stage's answer for one task (`checker.score`)."""
        detail = TrackA.from_dict(answer.get("track_a"))
        # the agent's own clock per track: what Track A's repeats cost, task by task
        kw.setdefault("timings", {k: v for k, v in (answer.get("timings") or {}).items()
                                  if isinstance(v, (int, float)) and not isinstance(v, bool)})
        return cls(task=answer.get("task") or task, source=source, outcome=TaskOutcome.SCORED,
                   metric=answer.get("metric"), track_a=detail.value if detail else None,
                   track_b=answer.get("track_b"), weight=answer.get("eval_weight"), track_a_detail=detail,
                   counts=answer.get("counts"), mode=answer.get("mode"),
                   xares_disabled_overridden=True if answer.get("xares_disabled") else None, **kw)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TaskResult":
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["track_a_detail"] = TrackA.from_dict(data.get("track_a_detail"))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "task": self.task, "source": self.source, "metric": self.metric, "track_a": self.track_a,
            "track_b": self.track_b, "weight": self.weight, "outcome": self.outcome.value, "reason": self.reason,
            "track_a_detail": self.track_a_detail.to_dict() if self.track_a_detail else None,
            "counts": dict(self.counts) if self.counts is not None else None, "mode": self.mode,
            "timings": dict(self.timings), "encoder": self.encoder, "log": self.log,
        }
        if self.xares_disabled_overridden:
            data["xares_disabled_overridden"] = True  # only then: results of other tasks are unchanged
        return data


@dataclasses.dataclass(frozen=True)
class ScoreResult:
    """One submission scored: `result.json`."""

    submission: Mapping[str, Any]
    versions: Mapping[str, Any]
    settings: Mapping[str, Any]
    tasks: tuple[TaskResult, ...]
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict)
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # sections the bulk run adds

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))

    @property
    def status(self) -> ResultStatus:
        return ResultStatus.COMPLETE if all(t.outcome is TaskOutcome.SCORED for t in self.tasks) \
            else ResultStatus.PARTIAL

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScoreResult":
        """A result as written (schema-checked first: it may come from disk)."""
        schemas.validate("result", data)
        core = {"schema_version", "status", "submission", "versions", "settings", "tasks", "timings"}
        return cls(submission=data["submission"], versions=data["versions"], settings=data["settings"],
                   tasks=tuple(TaskResult.from_dict(t) for t in data["tasks"]), timings=data["timings"],
                   extra={k: v for k, v in data.items() if k not in core})

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema_version": schemas.SCHEMA_VERSION,
            "status": self.status.value,
            "submission": dict(self.submission),
            "versions": dict(self.versions),
            "settings": dict(self.settings),
            "tasks": [t.to_dict() for t in self.tasks],
            "timings": dict(self.timings),
            **dict(self.extra),
        }
        return schemas.validate("result", data)
