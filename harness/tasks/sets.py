"""Whole task sets, planned before any work: which tasks will run, which cannot, and what that costs.

Scoring the challenge's ranked sets offline (`paper`, `icme2025-final`) needs three things per task:
an X-ARES 0.1.3 module (speechocean762, nsynth_pitch and librispeech_phoneme have none), the task's
data under `--data` (hidden datasets come only from the organizer), and, for librispeech and clotho,
their pretrained dependencies in the model store (`harness.tasks.models`). A run that lacks one of
these would otherwise fail late, or, worse, quietly rank a submission over fewer tasks. So the plan
says up front which tasks of each track run and why the others do not, and what share of each track's
weight (X-ARES `eval_weight`, the paper's n_i) goes missing.

`check_data` is the data part alone, for any list of tasks, so that a run can report a task as
"data not supplied" before it builds anything.

Host-side and cheap: it reads file names, not shards (the prepare stage checks contents), and
verifies the model store against its manifest (hashes cached per process).
"""

from __future__ import annotations

import dataclasses
import enum
import glob
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.tasks.registry import Registry, TaskEntry, Track, load_registry

#: X-ARES's `XaresSettings.audio_ready_filename`
AUDIO_READY = ".audio_tar_ready"


class Missing(str, enum.Enum):
    """Why a task of a task set has no value in a track."""

    NO_MODULE = "no_module"  # X-ARES 0.1.3 has no task module for it
    NO_DATA = "no_data"  # its data is not under --data
    NO_MODEL = "no_model"  # a pretrained dependency is not in the model store
    NO_GPU = "no_gpu"  # it can only be trained on a GPU and the run has none
    NO_KNN = "no_knn"  # Track B: X-ARES 0.1.3 computes no kNN score for it (do_knn=False)

    @property
    def label(self) -> str:
        return {Missing.NO_MODULE: "no X-ARES module", Missing.NO_DATA: "data not supplied",
                Missing.NO_MODEL: "no model", Missing.NO_GPU: "needs a GPU",
                Missing.NO_KNN: "no kNN in X-ARES"}[self]


# --------------------------------------------------------------------------------------------------
# Data


def _task_facts(task: Any, registry: Registry) -> tuple[str, TaskEntry | None]:
    """(the folder name under --data, the registry entry when the task is X-ARES's own module)."""
    if isinstance(task, TaskEntry):
        return task.name, task
    if isinstance(task, str):
        entry = registry.get(task)
        return entry.name, entry
    name = getattr(task, "task_name", None) or getattr(task, "label")
    entry = registry.get(name) if name in registry else None
    if entry is not None and getattr(task, "module", None) != entry.xares_module:
        entry = None  # a task file that borrows a registry name: its own shard names are unknown here
    return name, entry


def data_problem(name: str, entry: TaskEntry | None, data_dir: Path | None) -> str | None:
    """Why the data of task `name` is not under `data_dir`, or None when it is (file names only)."""
    hidden = entry is not None and entry.hidden
    suffix = " (a hidden dataset: only the organizer has its audio)" if hidden else ""
    if data_dir is None or not Path(data_dir).is_dir():
        return f"data not supplied: no data folder ({data_dir or 'no --data'}){suffix}"
    folder = Path(data_dir) / name
    if not folder.is_dir():
        return f"data not supplied: no folder {folder}{suffix}"
    if not (folder / AUDIO_READY).is_file():
        return (f"data not supplied: {folder / AUDIO_READY} is missing (the marker goes in once every shard is "
                f"there; without it X-ARES would try to download the data){suffix}")
    patterns = entry.audio_tar_globs if entry is not None and entry.audio_tar_globs else ("*.tar",)
    for pattern in patterns:
        if not glob.glob(glob.escape(str(folder)) + "/" + pattern):
            return f"data not supplied: no shard matches {folder}/{pattern}{suffix}"
    return None


def check_data(tasks: Iterable[Any], data_dir: Path | str | None, *,
               registry: Registry | None = None) -> list[tuple[Any, str]]:
    """The tasks whose data is not under `data_dir`, each with the reason ("data not supplied: ...").

    `tasks` holds registry names, `TaskEntry`s or `TaskRef`s (what `resolve_tasks` returns); each is
    returned as given. A registry task needs `<data>/<name>/.audio_tar_ready` and a shard for every
    pattern X-ARES globs (`TaskEntry.audio_tar_globs`); a task file needs the marker and one `.tar`.

    Raises:
        UsageError: an unknown registry name.
    """
    registry = registry or load_registry()
    data = Path(data_dir) if data_dir is not None else None
    out = []
    for task in tasks:
        name, entry = _task_facts(task, registry)
        problem = data_problem(name, entry, data)
        if problem is not None:
            out.append((task, problem))
    return out


# --------------------------------------------------------------------------------------------------
# The plan


@dataclasses.dataclass(frozen=True)
class PlanItem:
    """One task of one track of the set: scored (`missing` None), or why not."""

    task: str
    track: Track
    weight: int | None  # X-ARES eval_weight; None where the registry has none
    missing: Missing | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "track", Track(self.track))
        if self.missing is not None:
            object.__setattr__(self, "missing", Missing(self.missing))

    @property
    def runs(self) -> bool:
        return self.missing is None

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "weight": self.weight, "runs": self.runs,
                "missing": self.missing.value if self.missing else None, "detail": self.detail}


@dataclasses.dataclass(frozen=True)
class TrackPlan:
    track: Track
    items: tuple[PlanItem, ...]

    @property
    def total_weight(self) -> int:
        """The weight of the track's tasks that have one (the paper's set has two without)."""
        return sum(i.weight for i in self.items if i.weight)

    @property
    def missing_weight(self) -> int:
        return sum(i.weight for i in self.items if i.weight and not i.runs)

    @property
    def missing_share(self) -> float:
        """The share of the track's (known) weight without a value: 0 when everything runs."""
        return self.missing_weight / self.total_weight if self.total_weight else 0.0

    @property
    def unweighted(self) -> tuple[str, ...]:
        """Tasks without an eval_weight: their share cannot be known (and the formula leaves them out)."""
        return tuple(i.task for i in self.items if not i.weight)

    def to_dict(self) -> dict[str, Any]:
        return {"track": self.track.value, "tasks": len(self.items), "runs": sum(i.runs for i in self.items),
                "total_weight": self.total_weight, "missing_weight": self.missing_weight,
                "missing_share": self.missing_share, "unweighted": list(self.unweighted),
                "items": [i.to_dict() for i in self.items]}


@dataclasses.dataclass(frozen=True)
class TaskSetPlan:
    """What scoring task set `task_set` with `data_dir` and `models_dir` will and will not do."""

    task_set: str
    description: str
    source: str
    data_dir: Path | None
    models_dir: Path | None
    tracks: Mapping[Track, TrackPlan]
    #: per task of the set (registry order): None when it runs, else (reason, detail)
    tasks: Mapping[str, tuple[Missing, str] | None]
    models_digest: str | None = None  # sha256 of the store's manifest

    def __post_init__(self) -> None:
        object.__setattr__(self, "tracks", {Track(t): p for t, p in dict(self.tracks).items()})
        object.__setattr__(self, "tasks", dict(self.tasks))

    @property
    def run(self) -> tuple[str, ...]:
        """The tasks to score, in registry order: each runs once and gives its Track A and B values."""
        return tuple(t for t, why in self.tasks.items() if why is None)

    @property
    def not_run(self) -> dict[str, tuple[Missing, str]]:
        return {t: why for t, why in self.tasks.items() if why is not None}

    @property
    def complete(self) -> bool:
        return all(i.runs for p in self.tracks.values() for i in p.items)

    def task_refs(self, registry: Registry | None = None) -> tuple[Any, ...]:
        """The `TaskRef`s of the tasks that run (what `ScoreSettings.tasks` takes)."""
        from harness.tasks.arguments import resolve_tasks

        return resolve_tasks(list(self.run), registry=registry)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_set": self.task_set, "description": self.description, "source": self.source,
            "data": str(self.data_dir) if self.data_dir else None,
            "models": str(self.models_dir) if self.models_dir else None, "models_manifest_sha256": self.models_digest,
            "run": list(self.run),
            "not_run": [{"task": t, "missing": why.value, "detail": detail}
                        for t, (why, detail) in self.not_run.items()],
            "tracks": {t.value: p.to_dict() for t, p in self.tracks.items()},
        }


def _task_blocker(entry: TaskEntry, data_dir: Path | None, store: Any, models_dir: Path | None,
                  gpu: bool | None) -> tuple[Missing, str] | None:
    from harness.tasks import models

    if not entry.supported or not entry.xares_module:
        return Missing.NO_MODULE, entry.unsupported_reason or "X-ARES 0.1.3 has no task module for it"
    problem = data_problem(entry.name, entry, data_dir)
    if problem is not None:
        return Missing.NO_DATA, problem
    reason = models.no_model_reason(entry.pretrained_dependencies, store, models_dir)
    if reason is not None:
        return Missing.NO_MODEL, reason
    if gpu is False:
        problem = models.cpu_problem(entry.pretrained_dependencies, store)
        if problem is not None:
            return Missing.NO_GPU, problem
    return None


def plan(task_set_name: str, data_dir: Path | str | None, models_dir: Path | str | None, *,
         gpu: bool | None = None, registry: Registry | None = None) -> TaskSetPlan:
    """Which tasks of `task_set_name` a run with this data and model store scores, per track, and
    what share of each track's weight is missing.

    `gpu=False` also marks tasks that X-ARES can only train on a GPU (the real bf16 Qwen with
    transformers 5); None does not check.

    Raises:
        UsageError: an unknown task set (naming the declared ones); a model store path that is not a folder.
        InfraError: a model store whose files do not match its manifest (naming the file).
    """
    from harness.tasks import models

    registry = registry or load_registry()
    info = registry.task_set_info(task_set_name)
    data = Path(data_dir) if data_dir is not None else None
    store_dir = Path(models_dir) if models_dir is not None else None
    store = models.verify_store(store_dir) if store_dir is not None else None
    members = [e for e in registry if e.task_sets.get(info.name)]
    blockers = {e.name: _task_blocker(e, data, store, store_dir, gpu) for e in members}
    tracks: dict[Track, TrackPlan] = {}
    for track in Track:
        items = []
        for entry in registry.task_set(info.name, track):
            blocker = blockers[entry.name]
            if blocker is None and track is Track.B and not entry.xares_do_knn:
                blocker = (Missing.NO_KNN, "X-ARES 0.1.3 sets do_knn=False for this task: it computes no Track B "
                                           "(kNN) score")
            items.append(PlanItem(entry.name, track, entry.eval_weight, *(blocker or (None, ""))))
        tracks[track] = TrackPlan(track, tuple(items))
    return TaskSetPlan(task_set=info.name, description=info.description, source=info.source, data_dir=data,
                       models_dir=store_dir, tracks=tracks, tasks=blockers,
                       models_digest=store.digest if store is not None else None)


__all__ = ["AUDIO_READY", "Missing", "PlanItem", "TaskSetPlan", "TrackPlan", "check_data", "data_problem", "plan"]
