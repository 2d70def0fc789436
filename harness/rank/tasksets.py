"""Which tasks a leaderboard averages over, per track.

The paper's Table 1 and the organizers' final results rank different task sets (26/21 vs 27/20 tasks),
so the set is data: the registry declares named sets (`paper`, `icme2025-final`) and each task's
membership in them. Without `--task-set` the leaderboard ranks over the tasks present in its inputs
and warns what each named set would have required, so that a partial run is never mistaken for the
challenge's ranking.

A task of a set that the formula cannot use (no normalisation bounds or no `eval_weight` in the
registry: speechocean762, nsynth_pitch in the paper's set) is left out, and said so, rather than
guessed.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

from harness.errors import UsageError
from harness.rank.model import CellState, Entry, Track
from harness.tasks.registry import Registry, TaskEntry

#: the default "set": the tasks the inputs hold
PRESENT = "present"


@dataclasses.dataclass(frozen=True)
class LeftOut:
    """A task of the chosen set that cannot enter the formula, and why."""

    task: str
    track: Track
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "track", Track(self.track))


@dataclasses.dataclass(frozen=True)
class TaskSelection:
    """The tasks each track averages over (registry order), and what was left out or differs."""

    name: str
    description: str
    source: str
    tasks: Mapping[Track, tuple[str, ...]]
    left_out: tuple[LeftOut, ...] = ()
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        tasks = {Track(t): tuple(v) for t, v in dict(self.tasks).items()}
        if set(tasks) != set(Track):
            raise UsageError("a task selection names the tasks of both tracks", expected="tracks A and B",
                             found=", ".join(t.value for t in tasks), fix="harness bug")
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "left_out", tuple(self.left_out))
        object.__setattr__(self, "warnings", tuple(self.warnings))


def rankable_reason(entry: TaskEntry) -> str | None:
    """Why the formula cannot use this task, or None when it can."""
    if entry.worst is None or entry.best is None:
        return f"no normalisation bounds in the registry ({entry.unsupported_reason or 'none given'})"
    if not entry.eval_weight:
        return "no X-ARES eval_weight in the registry (X-ARES 0.1.3 has no task module for it)"
    return None


def _eligible(entry: TaskEntry, track: Track) -> bool:
    """Whether a failed or errored task belongs to `track` when no value says so: any task has a
    Track A (probe) score; only tasks X-ARES scores with kNN have a Track B one."""
    return track is Track.A or bool(entry.xares_do_knn)


def present_tasks(registry: Registry, entries: Iterable[Entry], track: Track) -> set[str]:
    """Tasks some row of `track` holds: a value, or a failure/error of a task that has this track."""
    found: set[str] = set()
    for row in entries:
        if row.track is not track:
            continue
        for name, cell in row.cells.items():
            if cell.state is CellState.VALUE or (
                    cell.state in (CellState.FAILED, CellState.ERROR) and _eligible(registry.get(name), track)):
                found.add(name)
    return found


def _ordered(registry: Registry, names: Iterable[str]) -> tuple[str, ...]:
    wanted = set(names)
    return tuple(n for n in registry.names() if n in wanted)


def select_tasks(registry: Registry, entries: Iterable[Entry], set_name: str | None = None) -> TaskSelection:
    """The tasks each track ranks over: a named registry set, or (None) the tasks present.

    Raises:
        UsageError: an unknown set name (naming the declared ones).
    """
    entries = list(entries)
    present = {t: present_tasks(registry, entries, t) for t in Track}
    left_out: list[LeftOut] = []
    warnings: list[str] = []
    chosen: dict[Track, tuple[str, ...]] = {}

    if set_name is None or set_name == PRESENT:
        name, description = PRESENT, "the tasks present in the inputs (no --task-set given)"
        source = "the results and reference rows given"
        wanted = {t: _ordered(registry, present[t]) for t in Track}
        only_custom = all(registry.get(n).custom for t in Track for n in present[t])
        if only_custom and any(present.values()):
            # comparing a custom suite with the challenge's sets would list every challenge task: say it once
            warnings.append("no --task-set: every task present is a custom task (not in the registry), so this is "
                            "not a challenge ranking; named task sets: "
                            + ", ".join(i.name for i in registry.task_sets))
        for info in () if only_custom else registry.task_sets:
            for track in Track:
                members = {e.name for e in registry.task_set(info.name, track)}
                need = _ordered(registry, members - present[track])
                extra = _ordered(registry, present[track] - members)
                if need or extra:
                    warnings.append(
                        f"no --task-set: Track {track.value} ranks over the {len(present[track])} tasks present; "
                        f"task set '{info.name}' would also require {', '.join(need) or 'nothing'}"
                        + (f" and would leave out {', '.join(extra)}" if extra else ""))
    else:
        info = registry.task_set_info(set_name)
        name, description, source = info.name, info.description, info.source
        wanted = {t: tuple(e.name for e in registry.task_set(set_name, t)) for t in Track}
        for track in Track:
            ignored = _ordered(registry, present[track] - set(wanted[track]))
            if ignored:
                warnings.append(f"Track {track.value}: {', '.join(ignored)} present in the inputs but not in task "
                                f"set '{set_name}': not ranked")
            lacking = _ordered(registry, set(wanted[track]) - present[track])
            if lacking and entries:
                warnings.append(f"Track {track.value}: task set '{set_name}' has {', '.join(lacking)}, which no input "
                                "holds: every row misses them (see the missing-task policy)")

    for track in Track:
        keep = []
        for task in wanted[track]:
            reason = rankable_reason(registry.get(task))
            if reason is None:
                keep.append(task)
            else:
                left_out.append(LeftOut(task, track, reason))
                warnings.append(f"Track {track.value}: {task} left out of the average: {reason}")
        chosen[track] = tuple(keep)
    return TaskSelection(name=name, description=description, source=source, tasks=chosen,
                         left_out=tuple(left_out), warnings=tuple(warnings))
