"""One verdict, in the same words everywhere: `aecc validate`, the CI gate (step summary and JUnit),
`python -m checker`, and `aecc score` / `aecc status` / `result.json`.

Each check has a level (`checker.jobs.CHECK_LEVELS`): `rule` (X-ARES's own checker: failing it
excludes the submission), `scoring` (scored, but a task will fail or be worthless) or `advice`. From
the checks of one run this module derives the outcome and its first line:

    will be excluded: <rule checks that failed or could not be established>
    will be scored, but: <scoring checks that failed>
    passes (N advisories)

then the checks that did not pass, grouped by level, each with its fix. Exit codes: 0 when no
`rule` or `scoring` check failed, 1 otherwise, 2 when the run could not judge the submission
(infrastructure); `strict` makes advisories fail too (exit 1).

Every writer of a report calls `summarise` on its own check list and stores `Summary.to_dict()`;
every renderer prints `Summary.lines()`. No tool words the verdict itself. Standard library only:
the in-place checker on Colab and the container agent import it.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Iterable, Mapping, Sequence

from checker.jobs import CHECK_LEVELS, Level, level_of

__all__ = ["Outcome", "Summary", "Item", "summarise", "RULE_CHECK_IDS", "EXIT_OK", "EXIT_FAILED", "EXIT_ERROR"]

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
HEADLINE_MESSAGE_CHARS = 200
HEADLINE_MORE_IDS = 5

#: the contract checker's rule-level ids: all of them must pass before anything can be scored
RULE_CHECK_IDS: tuple[str, ...] = tuple(i for i, lvl in CHECK_LEVELS.items() if lvl is Level.RULE
                                        and i not in ("discover", "intake", "build", "fetch"))


class Outcome(str, enum.Enum):
    EXCLUDED = "excluded"  # a rule check failed, or could not be established
    SCORED_WITH_PROBLEMS = "scored_with_problems"  # scored, but tasks will fail or be worthless
    PASSES = "passes"  # nothing but advisories
    ERROR = "error"  # the run could not judge the submission; never the submission's fault


@dataclasses.dataclass(frozen=True)
class Item:
    """One check that did not pass, as the verdict lists it."""

    id: str
    level: Level
    status: str  # failed, warning, or skipped (a rule check that never ran)
    message: str
    fix: str | None = None
    expected: str | None = None
    found: str | None = None
    log: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in {"id": self.id, "level": self.level.value, "status": self.status,
                                  "message": self.message, "fix": self.fix, "expected": self.expected,
                                  "found": self.found, "log": self.log}.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Item":
        return cls(str(data["id"]), Level(data["level"]), str(data["status"]), str(data["message"]),
                   fix=data.get("fix"), expected=data.get("expected"), found=data.get("found"), log=data.get("log"))

    @property
    def advisory(self) -> bool:
        return self.level is Level.ADVICE or self.status == "warning"


@dataclasses.dataclass(frozen=True)
class Summary:
    outcome: Outcome
    headline: str
    items: tuple[Item, ...] = ()  # what did not pass, in report order
    strict: bool = False
    error: str | None = None

    @property
    def advisories(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.advisory)

    @property
    def exit_code(self) -> int:
        if self.outcome is Outcome.ERROR:
            return EXIT_ERROR
        if self.outcome is not Outcome.PASSES:
            return EXIT_FAILED
        return EXIT_FAILED if self.strict and self.advisories else EXIT_OK

    @property
    def ok(self) -> bool:
        """True when the run exits 0."""
        return self.exit_code == EXIT_OK

    def group(self, level: Level) -> tuple[Item, ...]:
        """The items listed under `level`: a warning of a rule or scoring check is advice."""
        return tuple(i for i in self.items if (Level.ADVICE if i.advisory else i.level) is level)

    def lines(self) -> list[str]:
        """The headline, then every check that did not pass, grouped by level, each with its fix."""
        out = [self.headline]
        for level in Level:
            items = self.group(level)
            if not items:
                continue
            out.append(f"{level.value} ({level.meaning}):")
            for item in items:
                out.append(f"  {item.status.upper():8} {item.id}: {item.message}")
                for key in ("expected", "found", "fix", "log"):
                    value = getattr(item, key)
                    if value:
                        out.append(f"           {key}: {value}")
        if self.strict and self.advisories and self.outcome is Outcome.PASSES:
            out.append("--strict: advisories fail this run (exit 1)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "headline": self.headline, "exit_code": self.exit_code,
                "strict": self.strict, "counts": {lvl.value: len(self.group(lvl)) for lvl in Level},
                "items": [i.to_dict() for i in self.items]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Summary":
        return cls(Outcome(data["outcome"]), str(data["headline"]), tuple(Item.from_dict(i) for i in data["items"]),
                   strict=bool(data.get("strict")))


def _level(check: Mapping[str, Any]) -> Level | None:
    if check.get("level"):
        return Level(check["level"])
    return level_of(str(check["id"]))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def summarise(checks: Iterable[Mapping[str, Any]], *, error: str | None = None, strict: bool = False,
              expect_rule_checks: bool | None = None) -> Summary:
    """The verdict of one run from its checks (dicts with id, status, message, and optionally level,
    fix, expected, found, log).

    Args:
        error: set when the run could not judge the submission (infrastructure): the outcome is
            `error` whatever the checks say.
        expect_rule_checks: the contract checker's rule checks must all have passed (a report that
            ends before them cannot establish what X-ARES checks). Default: when any of its checks
            is present.
    """
    checks = [c for c in checks]
    present = {str(c["id"]) for c in checks}
    if expect_rule_checks is None:
        expect_rule_checks = bool(present & set(RULE_CHECK_IDS))
    items: list[Item] = []
    for c in checks:
        status = str(c["status"])
        level = _level(c)
        if status == "passed" or level is None:
            continue
        if status == "skipped" and level is not Level.RULE:
            continue
        if status == "skipped" and not expect_rule_checks:
            continue
        items.append(Item(str(c["id"]), level, status, str(c["message"]), fix=_text(c.get("fix")),
                          expected=_text(c.get("expected")), found=_text(c.get("found")), log=_text(c.get("log"))))
    if expect_rule_checks and not any(i.level is Level.RULE and i.status == "failed" for i in items):
        # Nothing failed, yet what X-ARES checks was not all established: the run ended early.
        for missing in (i for i in RULE_CHECK_IDS if i not in present):
            items.append(Item(missing, Level.RULE, "skipped", "not run: the check stage ended before it"))
    if error is not None:
        return Summary(Outcome.ERROR, f"could not be judged: infrastructure error, not the submission's fault ({error})",
                       tuple(items), strict, error)
    rule = [i for i in items if i.level is Level.RULE and i.status in ("failed", "skipped")]
    scoring = [i for i in items if i.level is Level.SCORING and i.status == "failed"]
    if rule:
        failed = [i for i in rule if i.status == "failed"]
        headline = "will be excluded: " + _names(failed or rule, "failed" if failed else "could not be established")
        return Summary(Outcome.EXCLUDED, headline, tuple(items), strict)
    if scoring:
        return Summary(Outcome.SCORED_WITH_PROBLEMS, "will be scored, but: " + _names(scoring, "failed"),
                       tuple(items), strict)
    advisories = sum(i.advisory for i in items)
    return Summary(Outcome.PASSES, f"passes ({advisories} advisor{'y' if advisories == 1 else 'ies'})",
                   tuple(items), strict)


def _names(items: Sequence[Item], verb: str) -> str:
    first = items[0]
    message = first.message if len(first.message) <= HEADLINE_MESSAGE_CHARS \
        else first.message[:HEADLINE_MESSAGE_CHARS - 3] + "..."
    others = list(dict.fromkeys(i.id for i in items[1:] if i.id != first.id))
    shown = ", ".join(others[:HEADLINE_MORE_IDS]) + (f" and {len(others) - HEADLINE_MORE_IDS} more"
                                                     if len(others) > HEADLINE_MORE_IDS else "")
    more = f" (and {shown})" if others else ""
    return f"{first.id} {verb}: {message}{more}"
