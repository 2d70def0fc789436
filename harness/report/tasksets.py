"""A task-set plan (`harness.tasks.sets.plan`) for people: before a run starts, which tasks of the
set will be scored, which will not and why, and how much of each track's weight goes missing.

Two forms: `plan_lines` (plain text, one line each, for logs and progress output) and `render_plan`
(a rich table per track). The JSON form is `TaskSetPlan.to_dict()`.
"""

from __future__ import annotations

from typing import Any

from harness.tasks.registry import Track
from harness.tasks.sets import TaskSetPlan


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def track_summary(plan: TaskSetPlan, track: Track) -> str:
    """`Track A: 25 of 27 tasks run; missing weight 15000 of 63752 (23.5%): ...`"""
    tp = plan.tracks[Track(track)]
    runs = sum(i.runs for i in tp.items)
    line = (f"Track {tp.track.value}: {runs} of {len(tp.items)} tasks run; missing weight {tp.missing_weight} of "
            f"{tp.total_weight} ({_percent(tp.missing_share)})")
    missing = [f"{i.task} ({i.missing.label})" for i in tp.items if not i.runs]
    if missing:
        line += ": " + ", ".join(missing)
    if tp.unweighted:
        line += f"; without an eval_weight (share unknown, left out of the ranking): {', '.join(tp.unweighted)}"
    return line


def plan_lines(plan: TaskSetPlan) -> list[str]:
    """The plan as plain lines: the set, each track's summary, then each task that will not run and why."""
    lines = [f"task set {plan.task_set}: {len(plan.run)} task(s) to score: {', '.join(plan.run) or 'none'}"]
    lines += [track_summary(plan, t) for t in Track]
    for task, (why, detail) in plan.not_run.items():
        lines.append(f"not run: {task}: {detail}")  # the detail starts with the label
    if not plan.not_run and plan.complete:
        lines.append("every task of the set runs in both tracks")
    return lines


def render_plan(plan: TaskSetPlan, console: Any) -> None:
    """One table per track (task, weight, runs or why not), then the summaries."""
    from rich.table import Table
    from rich.text import Text

    for track in Track:
        tp = plan.tracks[track]
        table = Table(title=f"task set {plan.task_set}, Track {track.value}")
        for column in ("task", "weight", "status", "why"):
            table.add_column(column, overflow="fold")
        for item in tp.items:
            status = Text("runs", style="green") if item.runs else Text(item.missing.label, style="yellow")
            table.add_row(item.task, "-" if item.weight is None else str(item.weight), status, Text(item.detail))
        console.print(table)
    for track in Track:
        tp = plan.tracks[track]
        style = "green" if tp.missing_weight == 0 and not tp.unweighted else "yellow"
        console.print(Text(track_summary(plan, track), style=style))
