"""Tasks an organizer scores from a task file of their own (`aecc score --tasks my_task.py`): what
the ranking can know about them, and when it cannot know enough.

A registry task brings its normalisation bounds and weight from `registry.json`. A custom task
brings neither, so the leaderboard takes them from the results that scored it:
- its weight is its own `TaskConfig.eval_weight`, which the score stage records per task (`weight`);
- its bounds are its metric's natural range, following the paper's section 4.1: a metric that is a
  proportion (accuracy, mAP, F1, recall@k, X-ARES's `1 - WER`) runs from 0 (worst) to 1 (best); EER
  runs the other way (worst 1, best 0). A metric without a natural range (MSE, MAE, raw WER) has no
  bounds, and the task is refused with that reason.
Every result that scored the task must agree on its metric and weight; when they disagree, the
task is refused rather than guessed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

from harness.results import ScoreResult, TaskOutcome
from harness.tasks.registry import Bounds, Direction, Registry, TaskEntry, Visibility

#: metric name (as X-ARES task configs spell it) -> (direction, worst, best): the paper's section 4.1
NATURAL_RANGES: Mapping[str, tuple[Direction, float, float]] = {
    "accuracy": (Direction.HIGHER, 0.0, 1.0),
    "binary_accuracy": (Direction.HIGHER, 0.0, 1.0),
    "mAP": (Direction.HIGHER, 0.0, 1.0),
    "segmentf1": (Direction.HIGHER, 0.0, 1.0),
    "segmentf1_macro": (Direction.HIGHER, 0.0, 1.0),
    "segmentf1_micro": (Direction.HIGHER, 0.0, 1.0),
    "recallatk_r1": (Direction.HIGHER, 0.0, 1.0),
    "WER_inv": (Direction.HIGHER, 0.0, 1.0),
    "EER": (Direction.LOWER, 1.0, 0.0),
}


@dataclasses.dataclass(frozen=True)
class Refused:
    """A custom task the ranking cannot use, and why (shown on the page and in the JSON)."""

    task: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Seen:
    """What the results say about one task that is not in the registry."""

    task: str
    metrics: frozenset[str | None]
    weights: frozenset[int | None]
    knn: bool  # some result has a Track B value for it


def observe(results: Iterable[ScoreResult], registry: Registry) -> dict[str, Seen]:
    """Per non-registry task, the metrics and weights the *scored* records give (a failed record
    carries neither), and whether any has a Track B value."""
    found: dict[str, dict[str, Any]] = {}
    for result in results:
        for record in result.tasks:
            if record.task in registry:
                continue
            seen = found.setdefault(record.task, {"metrics": set(), "weights": set(), "knn": False})
            if record.outcome is TaskOutcome.SCORED:
                seen["metrics"].add(record.metric)
                seen["weights"].add(record.weight)
                seen["knn"] = seen["knn"] or record.track_b is not None
    return {name: Seen(name, frozenset(s["metrics"]), frozenset(s["weights"]), s["knn"]) for name, s in found.items()}


def entry_for(seen: Seen) -> TaskEntry | Refused:
    """A custom registry entry for `seen`, or the reason there can be none."""
    if not seen.metrics:
        return Refused(seen.task, "not a registry task, and no result scored it: its metric and eval_weight are "
                                  "unknown")
    if len(seen.metrics) > 1 or len(seen.weights) > 1:
        return Refused(seen.task, "not a registry task, and the results disagree on it (metrics "
                       f"{sorted(map(str, seen.metrics))}, weights {sorted(map(str, seen.weights))}): "
                       "they were scored with different task files")
    (metric,), (weight,) = seen.metrics, seen.weights
    natural = NATURAL_RANGES.get(metric or "")
    if natural is None:
        return Refused(seen.task, f"not a registry task, and its metric {metric!r} has no natural range to normalise "
                       "by (the paper's section 4.1 bounds accuracy, mAP, F1 and EER; known: "
                       + ", ".join(sorted(NATURAL_RANGES)) + ")")
    if isinstance(weight, bool) or not isinstance(weight, int) or weight <= 0:
        return Refused(seen.task, f"not a registry task, and its TaskConfig.eval_weight is {weight!r}, not a "
                       "positive integer")
    direction, worst, best = natural
    bounds = Bounds(worst=worst, best=best)
    return TaskEntry(
        name=seen.task, formal_name=seen.task, domain="custom", metric=metric, direction=direction,
        worst=worst, best=best, track_a=True, track_b=seen.knn, visibility=Visibility.PUBLIC, supported=True,
        eval_weight=weight, paper_bounds=bounds, xares_bounds=bounds, bounds_follow="agree",
        xares_do_knn=seen.knn, custom=True,
        notes=(f"custom task: weight from its TaskConfig.eval_weight ({weight}), bounds from the natural range "
               f"of {metric} (worst {worst:g}, best {best:g})",),
    )


def extend(registry: Registry, results: Iterable[ScoreResult]) -> tuple[Registry, tuple[Refused, ...]]:
    """`registry` plus an entry for every rankable custom task the results hold, and the refused ones."""
    entries: list[TaskEntry] = []
    refused: list[Refused] = []
    for seen in observe(results, registry).values():
        made = entry_for(seen)
        (refused if isinstance(made, Refused) else entries).append(made)
    return registry.with_custom(entries), tuple(refused)
