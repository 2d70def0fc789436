"""The vocabulary of the ranking: every status is an enum, every row and cell a frozen dataclass
checked on construction.

A cell says which of four things it is (a value, the submission's failure, not run, an
infrastructure error) because the leaderboard treats them differently and shows them differently:
a failure counts 0 (or is left out, by policy), "not run" is missing data, and an infrastructure
error is never turned into a number at all (DESIGN.md, "Trust boundaries").
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any, Mapping

from harness.errors import UsageError
from harness.tasks.registry import Track

__all__ = ["Cell", "CellState", "Entry", "MissingPolicy", "Provenance", "RowStatus", "Track",
           "DISPLAY_DECIMALS", "FORMULA_VERSION", "TIE_EPSILON"]

#: bumped whenever a rule below changes a number or a rank (normalisation, weights, policies, ties)
FORMULA_VERSION = "aecc-rank-1"
#: scores are shown with this many decimals (as the organizers' page does)
DISPLAY_DECIMALS = 3
#: rows whose unrounded scores differ by less than this share a rank: the display cannot tell them apart
TIE_EPSILON = 10.0 ** -DISPLAY_DECIMALS


class CellState(str, enum.Enum):
    """What one task contributed to one row."""

    VALUE = "value"  # a raw metric value
    FAILED = "failed"  # the submission failed the task (its fault): 0 at full weight, or left out
    NOT_RUN = "not_run"  # no value: the task was not run, unsupported, or has no value in this track
    ERROR = "error"  # an infrastructure error: never a value; the row is incomplete and not ranked

    @property
    def label(self) -> str:
        return {CellState.VALUE: "value", CellState.FAILED: "failed", CellState.NOT_RUN: "not run",
                CellState.ERROR: "error"}[self]


class MissingPolicy(str, enum.Enum):
    """How a failed or not-run task of the task set enters the average."""

    ZERO = "zero"  # counts 0 at full weight (the organizers' practice: two published rows have librispeech 0)
    EXCLUDE = "exclude"  # left out; the weights of the tasks present are renormalised

    @property
    def text(self) -> str:
        if self is MissingPolicy.ZERO:
            return ("a task the submission failed, or that was not run, counts 0 at its full weight "
                    "(the organizers did the same: two published Track A rows have librispeech 0)")
        return ("a task the submission failed, or that was not run, is left out and the weights of the "
                "tasks present are renormalised (--missing exclude)")


class Provenance(str, enum.Enum):
    """Why a row may be believed."""

    VERIFIED = "verified"  # its signature verified against the organizer's public key
    UNSIGNED = "unsigned"  # not verified, admitted with --allow-unsigned for a local look
    REFERENCE = "reference"  # a published row typed in from a CSV: reference, unverified

    @property
    def label(self) -> str:
        return {Provenance.VERIFIED: "verified", Provenance.UNSIGNED: "unverified (--allow-unsigned)",
                Provenance.REFERENCE: "reference, unverified"}[self]


class RowStatus(str, enum.Enum):
    """Whether a row is ranked."""

    COMPLETE = "complete"  # every task of the set has a value
    PARTIAL = "partial"  # some task failed or was not run: counted by the missing-task policy; ranked
    INCOMPLETE = "incomplete"  # an infrastructure error, or nothing to average: shown, never ranked


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One task of one row, before normalisation: its state and raw value(s)."""

    task: str
    state: CellState
    raw: float | None = None
    #: Track A repeats (raw values, one per seed); `raw` is their mean
    values: tuple[float, ...] = ()
    reason: str = ""
    #: X-ARES 0.1.3 marks the task disabled and the harness scored it anyway (the result says so)
    xares_disabled_overridden: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", CellState(self.state))
        object.__setattr__(self, "values", tuple(self.values))
        if self.state is CellState.VALUE:
            if not _finite(self.raw):
                raise UsageError(f"task '{self.task}': a value cell needs a finite number",
                                 expected="a finite raw metric value", found=repr(self.raw),
                                 fix="mark the cell failed or not run instead")
            if not all(_finite(v) for v in self.values):
                raise UsageError(f"task '{self.task}': a Track A repeat is not a finite number",
                                 expected="finite numbers in track_a_detail.values", found=repr(self.values),
                                 fix="check the result's track_a_detail")
        elif self.raw is not None or self.values:
            raise UsageError(f"task '{self.task}': a {self.state.value} cell cannot carry a value",
                             expected="raw=None for a cell without a value", found=repr(self.raw),
                             fix="use state 'value' for a number")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row of one track, before scoring: a verified result, an unsigned one, or a reference row."""

    track: Track
    name: str
    provenance: Provenance
    cells: Mapping[str, Cell]
    sha256: str | None = None
    published: str | None = None  # the published average as printed (references only)
    lock_sha256: str | None = None
    link: str | None = None  # relative link, from the site's root, to the signed result
    versions: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    key_id: str | None = None
    source: str = ""  # where it was read from

    def __post_init__(self) -> None:
        object.__setattr__(self, "track", Track(self.track))
        object.__setattr__(self, "provenance", Provenance(self.provenance))
        object.__setattr__(self, "cells", dict(self.cells))
        if not self.name or not self.name.strip():
            raise UsageError("a leaderboard row needs a name", expected="a non-empty name", found=repr(self.name),
                             fix="name the row (result 'name', or the encoder class)")
        for task, cell in self.cells.items():
            if cell.task != task:
                raise UsageError(f"row '{self.name}': cell filed under '{task}' is for '{cell.task}'",
                                 expected="cells keyed by their own task", found=task, fix="harness bug")
        if self.published is not None and self.provenance is not Provenance.REFERENCE:
            raise UsageError(f"row '{self.name}': only reference rows carry a published value",
                             expected="published=None for a result", found=repr(self.published),
                             fix="pass published values with --reference")

    @property
    def reference(self) -> bool:
        return self.provenance is Provenance.REFERENCE

    @property
    def verified(self) -> bool:
        return self.provenance is Provenance.VERIFIED
