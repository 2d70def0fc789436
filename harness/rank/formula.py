"""The paper's formula (section 4), the missing-task policy, the Track A spread and the tie rule.

Per task i of the track's task set, with the registry's bounds and X-ARES's `eval_weight` w_i:

    v_i = clamp((M_i - worst_i) / (best_i - worst_i), 0, 1)        (paper eq. 1; worst > best for
                                                                     lower-is-better: (worst - M)/(worst - best))
    S   = sum_i w_i v_i / sum_i w_i                                 (paper eq. 2, n_i = eval_weight)

over the tasks that count: every value; a failed or not-run task counts v_i = 0 at full weight
(`MissingPolicy.ZERO`) or is left out (`EXCLUDE`); an infrastructure error never counts and makes the
row incomplete (not ranked). A value outside [worst, best] is clamped and its cell flagged. The
public-only average is the same sum over the set's public (not hidden) tasks.

Track A is stochastic (its probe's training shuffle), so a result may hold several Track A runs per task
(issue 16). With s_i the population standard deviation of task i's normalised repeats and n_i their
number, the standard error of the row's Track A average is

    SE = sqrt( sum_i (w_i / W)^2 * s_i^2 / n_i ),   W = sum of the counted weights;

a task with one run contributes no spread. Track B (kNN) is deterministic and has none.

Ranking is by the unrounded score. Going down the sorted rows, a row ties with the row above when
their difference is below the display precision (0.001), or, in Track A, at most two standard errors
of the difference, 2 * sqrt(SE_a^2 + SE_b^2). Ties chain into a tie group; every row of a group gets
the group's best rank (1, 2, 2, 4).

With the paired bootstrap (harness/rank/bootstrap.py, issue 23) the rule for two adjacent rows that
both have per-clip data is significance-aware instead: they tie unless the upper row is ahead in at
least `tie_confidence` (0.95) of the resamples (or they differ by less than the display precision).
A pair where either row has no per-clip data (a published reference row, a result without clips.npz)
keeps the plain rule above. `normalise_many` and `average_many` are equations (1) and (2) over arrays
of resamples, so that the bootstrap averages exactly as the leaderboard does.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import math
from typing import Callable, Iterable, Sequence

import numpy as np

from harness.errors import UsageError
from harness.rank.model import (
    DISPLAY_DECIMALS,
    TIE_EPSILON,
    Cell,
    CellState,
    Entry,
    MissingPolicy,
    RowStatus,
    Track,
)
from harness.tasks.registry import Registry, TaskEntry

#: the rules, in words, as leaderboard.json and the page state them
RULES = {
    "normalisation": "v = clamp((M - worst) / (best - worst), 0, 1) with the registry's worst/best per task "
                     "(direction-aware: for a lower-is-better metric worst > best, i.e. (worst - M) / (worst - best))",
    "average": "S = sum(w_i * v_i) / sum(w_i) over the tasks that count, w_i = X-ARES eval_weight (paper eq. 2); "
               "public: the same over the task set's public (not hidden) tasks",
    "clamp": "a raw value outside [worst, best] is clamped to the nearer bound and its cell is flagged 'clamped'",
    "error": "an infrastructure error (outcome 'error') is never a value: the row is marked incomplete, shown with "
             "a provisional score over its other tasks, and not ranked until the task is rerun",
    "spread": "Track A: SE = sqrt(sum_i (w_i/W)^2 * s_i^2 / n_i), s_i the population std of task i's normalised "
              "repeats, n_i their number, W the counted weight; a task with one run adds no spread. The page "
              "shows mean \u00b1 SE. Track B (kNN) is deterministic: no spread",
    "tie_A": "rank by the unrounded score; going down, a row ties with the row above when they differ by less "
             "than 0.001 (the displayed precision) or by at most 2 * sqrt(SE_a^2 + SE_b^2); ties chain into a "
             "tie group whose rows share the group's best rank",
    "tie_B": "rank by the unrounded score; going down, a row ties with the row above when they differ by less "
             "than 0.001 (the displayed precision); ties chain into a tie group whose rows share its best rank",
    "tie_bootstrap": "rank by the unrounded score; going down, two adjacent rows that both have per-clip data "
                     "(clips.npz) tie unless the upper row is ahead (strictly higher score) in at least {confidence:g} "
                     "of the {resamples} paired bootstrap resamples (test clips drawn with replacement within each "
                     "task, the same draw for every row; in Track A one of each row's repeats drawn per task), or "
                     "when they differ by less than 0.001 (the displayed precision); a pair where either row has no "
                     "per-clip data keeps the plain rule: {plain}; ties chain into a tie group whose rows share the "
                     "group's best rank",
    "published": "a reference row's published value matches when the recomputed score, rounded half-up to the "
                 "published number of decimals, equals it",
}


class TieReason(str, enum.Enum):
    """Why a row shares the rank of the row above it."""

    PRECISION = "precision"  # the difference is below the displayed precision
    SPREAD = "spread"  # Track A: the difference is within two standard errors
    BOOTSTRAP = "bootstrap"  # the upper row is ahead in fewer than tie_confidence of the bootstrap resamples


@dataclasses.dataclass(frozen=True)
class ScoredCell:
    """One task of one row after normalisation: what it contributed and why."""

    task: str
    state: CellState
    weight: int
    public: bool
    raw: float | None = None
    normalised: float | None = None  # a value's v_i; 0.0 for a failure counted as zero; else None
    counted: bool = False
    clamped: bool = False
    repeats: int = 0
    std: float | None = None  # population std of the normalised repeats (two or more runs)
    reason: str = ""
    xares_disabled_overridden: bool = False  # scored although X-ARES 0.1.3 marks the task disabled

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", CellState(self.state))
        if self.counted != (self.normalised is not None):
            raise UsageError(f"task '{self.task}': a counted cell has a normalised value and only it",
                             expected="counted == (normalised is not None)",
                             found=f"counted={self.counted}, normalised={self.normalised}", fix="harness bug")
        if self.state is CellState.ERROR and self.counted:
            raise UsageError(f"task '{self.task}': an infrastructure error cannot count",
                             expected="counted=False", found="counted=True", fix="harness bug")


@dataclasses.dataclass(frozen=True)
class ScoredRow:
    entry: Entry
    status: RowStatus
    cells: tuple[ScoredCell, ...]
    score: float | None
    score_public: float | None
    se: float | None = None  # Track A standard error of `score`; None without repeats
    weight_counted: int = 0
    rank: int | None = None
    tie_group: int | None = None
    tie_reason: TieReason | None = None  # why this row shares the rank of the row above
    upper_ahead: float | None = None  # share of bootstrap resamples in which the row above scores higher

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RowStatus(self.status))
        object.__setattr__(self, "cells", tuple(self.cells))
        if self.status is not RowStatus.INCOMPLETE and self.score is None:
            raise UsageError(f"row '{self.entry.name}': a ranked row needs a score", expected="a score",
                             found="None", fix="harness bug")
        if self.rank is not None and self.status is RowStatus.INCOMPLETE:
            raise UsageError(f"row '{self.entry.name}': an incomplete row is never ranked", expected="rank None",
                             found=str(self.rank), fix="harness bug")

    @property
    def ranked(self) -> bool:
        return self.status is not RowStatus.INCOMPLETE

    @property
    def published_matches(self) -> bool | None:
        return published_matches(self.score, self.entry.published)


def published_matches(score: float | None, published: str | None) -> bool | None:
    """True when `score` rounded half-up to the published number of decimals equals `published`;
    None where there is nothing to compare. The float is rounded exactly (Decimal of the binary value)."""
    if published is None or score is None:
        return None
    target = decimal.Decimal(published)
    exponent = target.as_tuple().exponent
    quantum = decimal.Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)
    return decimal.Decimal(score).quantize(quantum, rounding=decimal.ROUND_HALF_UP) == target


def population_std(values: Sequence[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))


def _clamped(task: TaskEntry, raw: float) -> bool:
    low, high = sorted((task.worst, task.best))
    return not (low <= raw <= high)


def score_cell(cell: Cell, task: TaskEntry, policy: MissingPolicy) -> ScoredCell:
    """One cell's contribution under `policy` (its weight is the task's eval_weight)."""
    common = dict(task=task.name, state=cell.state, weight=int(task.eval_weight or 0), public=not task.hidden,
                  reason=cell.reason, xares_disabled_overridden=cell.xares_disabled_overridden)
    if cell.state is CellState.VALUE:
        repeats = [task.normalise(v) for v in cell.values] if len(cell.values) >= 2 else []
        return ScoredCell(**common, raw=float(cell.raw), normalised=task.normalise(cell.raw), counted=True,
                          clamped=_clamped(task, cell.raw) or any(_clamped(task, v) for v in cell.values),
                          repeats=len(cell.values), std=population_std(repeats) if repeats else None)
    if cell.state in (CellState.FAILED, CellState.NOT_RUN) and policy is MissingPolicy.ZERO:
        return ScoredCell(**common, normalised=0.0, counted=True)
    return ScoredCell(**common)


def score_entry(entry: Entry, tasks: Sequence[str], registry: Registry, policy: MissingPolicy) -> ScoredRow:
    """Score one row over `tasks` (registry names, each with bounds and an eval_weight)."""
    cells = []
    for name in tasks:
        cell = entry.cells.get(name) or Cell(name, CellState.NOT_RUN, reason="not in the input")
        cells.append(score_cell(cell, registry.get(name), policy))
    counted = [c for c in cells if c.counted]
    weight = sum(c.weight for c in counted)
    public = [c for c in counted if c.public]
    public_weight = sum(c.weight for c in public)
    # min(1.0, ...): a mean of values in [0, 1] is in [0, 1]; this keeps float rounding there too
    score = min(1.0, math.fsum(c.weight * c.normalised for c in counted) / weight) if weight else None
    score_public = min(1.0, math.fsum(c.weight * c.normalised for c in public) / public_weight) \
        if public_weight else None
    se = None
    if entry.track is Track.A and weight:
        spread = [c for c in counted if c.std is not None]
        if spread:
            se = math.sqrt(math.fsum((c.weight / weight) ** 2 * c.std ** 2 / c.repeats for c in spread))
    if any(c.state is CellState.ERROR for c in cells) or score is None:
        status = RowStatus.INCOMPLETE
    elif all(c.state is CellState.VALUE for c in cells):
        status = RowStatus.COMPLETE
    else:
        status = RowStatus.PARTIAL
    return ScoredRow(entry=entry, status=status, cells=tuple(cells), score=score, score_public=score_public, se=se,
                     weight_counted=weight)


#: the share of bootstrap resamples in which the first row scores strictly higher than the second, or
#: None where either row has no resamples (the plain rule decides)
AheadShare = Callable[[ScoredRow, ScoredRow], "float | None"]


def tie_rule_text(track: Track, *, resamples: int = 0, confidence: float = 0.95) -> str:
    """The tie rule in force for `track`, in words: the plain rule, or the bootstrap's when it ran."""
    plain = RULES[f"tie_{Track(track).value}"]
    if resamples <= 0:
        return plain
    plain = plain.split("; ties chain")[0].removeprefix("rank by the unrounded score; going down, ")
    return RULES["tie_bootstrap"].format(confidence=confidence, resamples=resamples, plain=plain)


def normalise_many(task: TaskEntry, values: np.ndarray) -> np.ndarray:
    """Equation (1) over an array of raw values (bootstrap resamples): `task.normalise` element-wise,
    vectorised. One expression covers both directions, as in `TaskEntry.normalise`."""
    if task.worst is None or task.best is None:
        task.normalise(0.0)  # raises the registry's own "no normalisation bounds" error
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise UsageError(f"task '{task.name}': a resampled metric value is not a finite number",
                         expected=f"finite {task.metric} values", found="nan or inf",
                         fix="check the result's clips.npz (its per-clip data)")
    return np.clip((values - task.worst) / (task.best - task.worst), 0.0, 1.0)


def average_many(weights: Sequence[int], normalised: np.ndarray) -> np.ndarray:
    """Equation (2) over resamples: `normalised` is [..., T] (one column per counted task, in the order
    of `weights`), the result [...]; capped at 1.0 as `score_entry` caps float rounding."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or w.sum() <= 0:
        raise UsageError("the weighted average needs counted tasks with positive weight",
                         expected="one weight per counted task, summing above 0", found=repr(list(weights)),
                         fix="harness bug")
    return np.minimum(1.0, (np.asarray(normalised, dtype=np.float64) @ w) / w.sum())


def tie_reason(upper: ScoredRow, lower: ScoredRow, track: Track, ahead: AheadShare | None = None,
               tie_confidence: float = 0.95) -> TieReason | None:
    """Whether `lower` (the next row down) ties with `upper`, and why. With `ahead` (the bootstrap),
    a pair that both have resamples is separated only when `upper` is ahead in at least
    `tie_confidence` of them; any other pair keeps the plain rule."""
    difference = upper.score - lower.score
    if difference < TIE_EPSILON:
        return TieReason.PRECISION
    share = ahead(upper, lower) if ahead is not None else None
    if share is not None:
        return TieReason.BOOTSTRAP if share < tie_confidence else None
    if track is Track.A:
        spread = math.hypot(upper.se or 0.0, lower.se or 0.0)
        if spread > 0 and difference <= 2 * spread:
            return TieReason.SPREAD
    return None


def rank_rows(rows: Iterable[ScoredRow], track: Track, ahead: AheadShare | None = None,
              tie_confidence: float = 0.95) -> list[ScoredRow]:
    """Ranked rows by unrounded score (ties chained into groups), then the unranked ones. `ahead` and
    `tie_confidence`: the bootstrap's significance-aware rule (see `tie_reason`); without them, the
    plain rule."""
    rows = list(rows)
    ranked = sorted((r for r in rows if r.ranked), key=lambda r: (-r.score, r.entry.name))
    unranked = sorted((r for r in rows if not r.ranked),
                      key=lambda r: (r.score is None, -(r.score or 0.0), r.entry.name))
    groups: list[list[tuple[ScoredRow, TieReason | None]]] = []
    for row in ranked:
        upper = groups[-1][-1][0] if groups else None
        reason = tie_reason(upper, row, track, ahead, tie_confidence) if upper is not None else None
        if upper is not None and ahead is not None:
            row = dataclasses.replace(row, upper_ahead=ahead(upper, row))
        if reason is None:
            groups.append([(row, None)])
        else:
            groups[-1].append((row, reason))
    out: list[ScoredRow] = []
    group_id = 0
    for members in groups:
        rank = len(out) + 1
        if len(members) > 1:
            group_id += 1
        for row, reason in members:
            out.append(dataclasses.replace(row, rank=rank, tie_group=group_id if len(members) > 1 else None,
                                           tie_reason=reason))
    return out + unranked


def display(score: float | None) -> str:
    """A score as shown: DISPLAY_DECIMALS decimals, rounded half-up on the exact binary value."""
    if score is None:
        return "\u2013"
    quantum = decimal.Decimal(1).scaleb(-DISPLAY_DECIMALS)
    return str(decimal.Decimal(score).quantize(quantum, rounding=decimal.ROUND_HALF_UP))
