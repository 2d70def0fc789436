"""The task registry: every challenge task as data, and the paper's metric normalisation.

`harness/tasks/registry.json` lists every task of the paper's Table 1 and of the challenge page
(their union), plus the X-ARES 0.1.3 tasks that neither lists, each with what the paper says and
what X-ARES 0.1.3 does. Where they disagree the registry records both; the rule (docs/TASKS.md):
X-ARES 0.1.3 is the scoring engine, so its task definitions, metric and `eval_weight` are used; the
paper's Table 1 decides Track A/B membership and hidden datasets; the normalisation bounds are the
paper's definition (worst and best possible value of the metric) on the scale X-ARES returns.
Named task sets (`paper`, `icme2025-final`) say which tasks each leaderboard ranks, per track: the
paper's Table 1 and the organizers' final results differ (docs/TASKS.md, "Task sets"). Three hidden
tasks X-ARES 0.1.3 marks disabled are scored anyway (`overrides_xares_disabled`: only `xares.run`
reads the flag), and two tasks need pretrained models from the offline store (`pretrained_dependencies`).

Importing this module reads nothing; `load_registry()` reads and validates the file.
Standard library + jsonschema only: the host has no torch, so X-ARES task modules are read with
`ast`, never imported.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import json
import math
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import jsonschema

from harness.errors import ConfigError, UsageError

_HERE = Path(__file__).resolve().parent
DEFAULT_REGISTRY = _HERE / "registry.json"
SCHEMA_PATH = _HERE.parent / "schemas" / "task-registry.schema.json"

#: X-ARES picks the task factory as the one module attribute whose name ends with this.
CONFIG_SUFFIX = "_config"
#: a task module larger than this is not an X-ARES task file (the largest in 0.1.3 is ~40 KB)
MAX_TASK_MODULE_BYTES = 4 * 1024 * 1024


class Direction(str, enum.Enum):
    """Which way a metric improves."""

    HIGHER = "higher"
    LOWER = "lower"


class Track(str, enum.Enum):
    """The challenge's two tracks: A trains a probe (MLP), B runs kNN on frozen embeddings."""

    A = "A"
    B = "B"


class Visibility(str, enum.Enum):
    """`hidden`: the paper's dagger datasets, whose audio participants never see."""

    PUBLIC = "public"
    HIDDEN = "hidden"


@dataclasses.dataclass(frozen=True)
class Bounds:
    worst: float
    best: float


@dataclasses.dataclass(frozen=True)
class TaskSetInfo:
    """A named task set a leaderboard can rank over (registry top-level `task_sets`): what it is and
    where it comes from. Membership is per task (`TaskEntry.task_sets`)."""

    name: str
    description: str
    source: str


@dataclasses.dataclass(frozen=True)
class TaskEntry:
    """One task of the registry; field meanings are in the schema and docs/TASKS.md."""

    name: str
    formal_name: str
    domain: str
    metric: str
    direction: Direction
    worst: float | None
    best: float | None
    track_a: bool
    track_b: bool
    visibility: Visibility
    supported: bool
    xares_module: str | None = None
    config_function: str | None = None
    unsupported_reason: str | None = None
    eval_weight: int | None = None
    paper_name: str | None = None
    page_name: str | None = None
    page_baseline_name: str | None = None
    sources: tuple[str, ...] = ()
    paper_task_type: str | None = None
    task_type: str | None = None
    paper_metric: str | None = None
    paper_bounds: Bounds | None = None
    xares_bounds: Bounds | None = None
    bounds_follow: str = "agree"
    paper_classes: int | None = None
    xares_output_dim: int | None = None
    xares_do_knn: bool | None = None
    xares_private: bool | None = None
    xares_disabled: bool | None = None
    #: X-ARES sets disabled=True but the harness scores the task anyway (XaresTask ignores the flag)
    overrides_xares_disabled: bool = False
    crop_length: int | None = None
    #: X-ARES's audio_tar_name_of_split patterns under <env>/<name>/: the shards the task's data must hold
    audio_tar_globs: tuple[str, ...] | None = None
    k_fold: bool = False
    k_fold_splits: tuple[int, ...] | None = None
    external_dependencies: tuple[str, ...] = ()
    #: X-ARES TaskConfig.pretrained_dependencies ("qwen2", "bert-base-uncased:tokenizer"): the model store must
    #: hold them (harness.tasks.models)
    pretrained_dependencies: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: per named task set, the tracks this task is ranked in there (`{"paper": ("A", "B"), ...}`)
    task_sets: Mapping[str, tuple[Track, ...]] = dataclasses.field(default_factory=dict)
    #: not a registry task: scored from an organizer's own task file and ranked from what its results say
    #: (harness.tasks.custom); it has no X-ARES module here and belongs to no named task set
    custom: bool = False

    def __post_init__(self) -> None:
        # Coerce enums so that TaskEntry(direction="lower", ...) works and a typo is refused.
        try:
            object.__setattr__(self, "direction", Direction(self.direction))
        except ValueError:
            self._fail("direction", "one of " + ", ".join(d.value for d in Direction), repr(self.direction))
        try:
            object.__setattr__(self, "visibility", Visibility(self.visibility))
        except ValueError:
            self._fail("visibility", "one of " + ", ".join(v.value for v in Visibility), repr(self.visibility))

        if (self.worst is None) != (self.best is None):
            self._fail("worst/best", "both numbers, or both null", f"worst={self.worst!r}, best={self.best!r}")
        if self.worst is not None and self.best is not None:
            for key, value in (("worst", self.worst), ("best", self.best)):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    self._fail(key, "a finite number", repr(value))
            if self.worst == self.best:
                self._fail("worst/best", "worst != best (the normalisation divides by best - worst)",
                           f"worst == best == {self.worst!r}")
            if self.direction is Direction.HIGHER and not self.best > self.worst:
                self._fail("direction", "best > worst for a higher-is-better metric",
                           f"direction=higher, worst={self.worst!r}, best={self.best!r}")
            if self.direction is Direction.LOWER and not self.best < self.worst:
                self._fail("direction", "best < worst for a lower-is-better metric",
                           f"direction=lower, worst={self.worst!r}, best={self.best!r}")

        if self.supported:
            if self.unsupported_reason:
                self._fail("unsupported_reason", "null for a supported task", repr(self.unsupported_reason))
            if self.worst is None:
                self._fail("worst/best", "numbers for a supported task (its score must be normalisable)", "null")
            if not self.custom and (not self.xares_module or not self.config_function):
                self._fail("xares_module", "an X-ARES module and config function for a supported task",
                           f"xares_module={self.xares_module!r}, config_function={self.config_function!r}")
            if not self.eval_weight:
                self._fail("eval_weight", "a positive X-ARES eval_weight for a supported task", repr(self.eval_weight))
        elif not (self.unsupported_reason and self.unsupported_reason.strip()):
            self._fail("unsupported_reason", "a reason for every unsupported task", repr(self.unsupported_reason))

        self._check_xares_extras()
        if (self.xares_module is None) != (self.config_function is None):
            self._fail("config_function", "xares_module and config_function both set or both null",
                       f"xares_module={self.xares_module!r}, config_function={self.config_function!r}")
        if self.config_function is not None and not self.config_function.endswith(CONFIG_SUFFIX):
            self._fail("config_function", f"a name ending in {CONFIG_SUFFIX!r} (X-ARES's rule)",
                       repr(self.config_function))
        if self.track_b and not self.track_a:
            self._fail("track_b", "Track B tasks to be a subset of Track A (paper, Table 1)",
                       "track_b=true, track_a=false")
        self._check_task_sets()
        if self.eval_weight is not None and (isinstance(self.eval_weight, bool) or self.eval_weight < 0):
            self._fail("eval_weight", "a non-negative integer", repr(self.eval_weight))
        if self.k_fold != (self.k_fold_splits is not None):
            self._fail("k_fold", "k_fold true exactly when k_fold_splits is listed",
                       f"k_fold={self.k_fold!r}, k_fold_splits={self.k_fold_splits!r}")
        followed = {"agree": self.xares_bounds, "xares": self.xares_bounds, "none": None}.get(self.bounds_follow, ...)
        if followed is ...:
            self._fail("bounds_follow", "agree, xares or none", repr(self.bounds_follow))
        expected = (followed.worst, followed.best) if followed is not None else (None, None)
        if (self.worst, self.best) != expected:
            self._fail("worst/best", f"the bounds named by bounds_follow={self.bounds_follow!r}: {expected}",
                       f"({self.worst!r}, {self.best!r})")
        if self.bounds_follow == "agree" and self.paper_bounds != self.xares_bounds:
            self._fail("bounds_follow", "'agree' only where paper_bounds == xares_bounds",
                       f"paper={self.paper_bounds}, xares={self.xares_bounds}")

    def _check_xares_extras(self) -> None:
        """The override flag, the shard patterns and the pretrained dependencies agree with the module."""
        object.__setattr__(self, "pretrained_dependencies", tuple(self.pretrained_dependencies))
        if self.audio_tar_globs is not None:
            object.__setattr__(self, "audio_tar_globs", tuple(self.audio_tar_globs))
        disabled_and_run = self.supported and self.xares_disabled is True
        if disabled_and_run and not self.overrides_xares_disabled:
            self._fail("overrides_xares_disabled", "true for a supported task that X-ARES marks disabled (the harness "
                       "scores it anyway and says so)", "false")
        if self.overrides_xares_disabled and not disabled_and_run:
            self._fail("overrides_xares_disabled", "true only for a supported task whose X-ARES module sets "
                       "disabled=True", f"supported={self.supported!r}, xares_disabled={self.xares_disabled!r}")
        if self.xares_module is None and (self.audio_tar_globs or self.pretrained_dependencies):
            self._fail("audio_tar_globs", "no shard patterns or pretrained dependencies without an X-ARES module",
                       f"audio_tar_globs={self.audio_tar_globs!r}, "
                       f"pretrained_dependencies={self.pretrained_dependencies!r}")
        if self.audio_tar_globs is not None and not self.audio_tar_globs:
            self._fail("audio_tar_globs", "null, or at least one pattern", "[]")

    def _check_task_sets(self) -> None:
        sets: dict[str, tuple[Track, ...]] = {}
        for set_name, tracks in dict(self.task_sets).items():
            try:
                members = tuple(sorted({Track(t) for t in tracks}, key=lambda t: t.value))
            except ValueError:
                self._fail(f"task_sets.{set_name}", "a list of tracks, each 'A' or 'B'", repr(tracks))
            if len(members) != len(tuple(tracks)):
                self._fail(f"task_sets.{set_name}", "each track at most once", repr(tracks))
            if Track.B in members and Track.A not in members:
                self._fail(f"task_sets.{set_name}", "Track B tasks to be a subset of Track A in every set",
                           f"{set_name}: {[t.value for t in members]}")
            sets[set_name] = members
        paper = sets.get("paper")
        if self.custom and any(sets.values()):
            self._fail("task_sets", "no named task set for a custom task (the registry's sets list registry tasks)",
                       str({k: [t.value for t in v] for k, v in sets.items() if v}))
        if self.custom:
            paper = None
        flags = tuple(t for t, on in ((Track.A, self.track_a), (Track.B, self.track_b)) if on)
        if paper is not None and paper != flags:
            self._fail("task_sets.paper", f"the paper's set to equal the track_a/track_b flags: "
                       f"{[t.value for t in flags]}", str([t.value for t in paper]))
        object.__setattr__(self, "task_sets", sets)

    def in_task_set(self, set_name: str, track: Track | str) -> bool:
        """Whether this task is ranked in `track` of task set `set_name` (False for an undeclared set)."""
        return Track(track) in self.task_sets.get(set_name, ())

    def _fail(self, key: str, expected: str, found: str) -> None:
        raise ConfigError(
            f"task registry: task '{self.name}', key '{key}' is invalid",
            expected=expected,
            found=found,
            fix=f"correct task '{self.name}' in {DEFAULT_REGISTRY.name} (see docs/TASKS.md)",
        )

    @property
    def hidden(self) -> bool:
        return self.visibility is Visibility.HIDDEN

    @property
    def knn_scored(self) -> bool:
        """True where X-ARES 0.1.3 actually produces a Track B (kNN) score for this Track B task.

        The paper puts DESED and MAESTRO in Track B, but X-ARES sets `do_knn=False` for both.
        `XaresTask.run_knn` ignores `disabled`, so the overridden hidden tasks do get one.
        """
        return self.track_b and self.supported and bool(self.xares_do_knn)

    def normalise(self, value: float) -> float:
        """The paper's equation (1), `(M - worst) / (best - worst)`, clamped to [0, 1].

        With worst > best (a lower-is-better metric such as EER: worst 1, best 0) the same formula
        gives `(worst - M) / (worst - best)`, so one expression covers both directions.

        Raises:
            UsageError: the task has no bounds (unsupported) or the value is not a finite number.
        """
        if self.worst is None or self.best is None:
            raise UsageError(
                f"task '{self.name}': its metric has no normalisation bounds",
                expected="a task with worst/best in the registry",
                found=f"worst={self.worst!r}, best={self.best!r} ({self.unsupported_reason or 'no bounds'})",
                fix="leave the task out of the ranking, or add bounds to the registry with a source",
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UsageError(
                f"task '{self.name}': metric value is not a finite number",
                expected=f"a finite {self.metric} value between {self.worst} and {self.best}",
                found=repr(value),
                fix="check the score file X-ARES wrote for this task",
            )
        fraction = (float(value) - self.worst) / (self.best - self.worst)
        return min(1.0, max(0.0, fraction))


@dataclasses.dataclass(frozen=True)
class Registry:
    """The loaded registry: entries in file order, looked up by X-ARES task name."""

    entries: tuple[TaskEntry, ...]
    schema_version: int = 1
    xares_version: str = ""
    precedence: Mapping[str, str] = dataclasses.field(default_factory=dict)
    source: Path | None = None
    #: the named task sets, in file order (membership is on each entry)
    task_sets: tuple[TaskSetInfo, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for entry in self.entries:
            if entry.name in seen:
                raise ConfigError(
                    f"task registry: task '{entry.name}' is listed twice",
                    expected="each name once",
                    found=f"'{entry.name}' more than once",
                    fix="merge the two entries",
                )
            seen.add(entry.name)
        declared = [s.name for s in self.task_sets]
        if len(set(declared)) != len(declared):
            raise ConfigError("task registry: a task set is declared twice", expected="each set name once",
                              found=", ".join(declared), fix="merge the two declarations")
        for entry in self.entries if declared else ():
            if set(entry.task_sets) != set(declared):
                missing = sorted(set(declared) - set(entry.task_sets))
                extra = sorted(set(entry.task_sets) - set(declared))
                raise ConfigError(
                    f"task registry: task '{entry.name}', key 'task_sets' does not list exactly the declared sets",
                    expected="one key per declared task set: " + ", ".join(declared),
                    found=(f"missing {missing}" if missing else "") + ("; " if missing and extra else "")
                    + (f"undeclared {extra}" if extra else ""),
                    fix="list the task's tracks ([] when in neither) for every set declared at the top level, "
                        "and declare a new set there first",
                )

    def __iter__(self) -> Iterator[TaskEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return any(e.name == name for e in self.entries)

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def get(self, name: str) -> TaskEntry:
        """The entry called `name` (exact X-ARES task name).

        Raises:
            UsageError: unknown name, with "Did you mean: ...?" and the available names.
        """
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise UsageError(
            f"unknown task {name!r}",
            expected="an X-ARES task name from the registry",
            found=repr(name),
            fix=self._did_you_mean(name),
        )

    def _did_you_mean(self, name: str) -> str:
        # Aliases (formal, paper, page names, module stems) point to the registry name, so that
        # 'ESC-50', 'asvspoof' or 'crema_d' suggest 'esc50', 'asvspoof2015', 'cremad'.
        aliases: dict[str, str] = {}
        for e in self.entries:
            for alias in (e.name, e.formal_name, e.paper_name, e.page_name, e.page_baseline_name,
                          e.xares_module.rsplit(".", 1)[-1].removesuffix("_task") if e.xares_module else None):
                if alias:
                    aliases.setdefault(alias.lower(), e.name)
        close = difflib.get_close_matches(str(name).lower(), list(aliases), n=6, cutoff=0.6)
        suggestions = list(dict.fromkeys(aliases[c] for c in close))[:3]
        available = ", ".join(self.names())
        if suggestions:
            return f"Did you mean: {', '.join(suggestions)}? Available: {available}"
        return f"Available: {available}"

    def track_a(self) -> list[TaskEntry]:
        """Track A tasks (every task of the paper's Table 1), supported or not."""
        return [e for e in self.entries if e.track_a]

    def track_b(self) -> list[TaskEntry]:
        """Track B tasks (the paper's Table 1 check-mark column), supported or not."""
        return [e for e in self.entries if e.track_b]

    def public(self) -> list[TaskEntry]:
        return [e for e in self.entries if e.visibility is Visibility.PUBLIC]

    def hidden(self) -> list[TaskEntry]:
        return [e for e in self.entries if e.visibility is Visibility.HIDDEN]

    def supported(self) -> list[TaskEntry]:
        return [e for e in self.entries if e.supported]

    def task_set_names(self) -> list[str]:
        return [s.name for s in self.task_sets]

    def task_set_info(self, name: str) -> TaskSetInfo:
        """The declaration of task set `name`.

        Raises:
            UsageError: unknown set, naming the declared ones.
        """
        for info in self.task_sets:
            if info.name == name:
                return info
        close = difflib.get_close_matches(str(name), self.task_set_names(), n=1)
        raise UsageError(
            f"unknown task set {name!r}",
            expected="a task set declared in the registry: " + ", ".join(self.task_set_names()),
            found=repr(name),
            fix=(f"Did you mean: {close[0]}? " if close else "")
            + "or leave --task-set out to rank over the tasks present in the results",
        )

    def with_custom(self, extra: Iterable[TaskEntry]) -> "Registry":
        """This registry plus custom tasks (appended, in the given order), each in no named task set.

        Raises:
            ConfigError: an entry that is not marked custom, or a name already taken.
        """
        added = []
        for entry in extra:
            if not entry.custom:
                raise ConfigError(f"task '{entry.name}' is added as a custom task but is not marked custom",
                                  expected="custom=True", found="custom=False", fix="harness bug")
            added.append(dataclasses.replace(entry, task_sets={s.name: () for s in self.task_sets}))
        return dataclasses.replace(self, entries=self.entries + tuple(added))

    def task_set(self, name: str, track: Track | str) -> list[TaskEntry]:
        """The tasks of `track` in task set `name`, in registry order.

        Raises:
            UsageError: unknown set.
        """
        self.task_set_info(name)
        return [e for e in self.entries if e.in_task_set(name, track)]


# --------------------------------------------------------------------------------------------------
# Loading


def _schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _task_label(data: Any, path: list) -> str:
    if len(path) >= 2 and path[0] == "tasks" and isinstance(path[1], int):
        tasks = data.get("tasks") if isinstance(data, dict) else None
        if isinstance(tasks, list) and path[1] < len(tasks):
            task = tasks[path[1]]
            name = task.get("name") if isinstance(task, dict) else None
            return f"task '{name}'" if isinstance(name, str) else f"task #{path[1]}"
    return "registry"


def _explain(error: jsonschema.ValidationError, data: Any, origin: str) -> ConfigError:
    path = list(error.absolute_path)
    who = _task_label(data, path)
    key = ".".join(str(p) for p in path[2:]) if who != "registry" else ".".join(str(p) for p in path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return ConfigError(
            f"{origin}: {who}: unknown key {', '.join(repr(k) for k in extra)}",
            expected="only these keys: " + ", ".join(allowed),
            found=", ".join(extra),
            fix="remove or correct the key (a misspelt key would otherwise be silently ignored)",
        )
    if error.validator == "required":
        return ConfigError(
            f"{origin}: {who}: missing key" + (f" in '{key}'" if key else ""),
            expected=error.message,
            found="absent",
            fix=f"add the key; every field is spelt out (see {SCHEMA_PATH.name})",
        )
    return ConfigError(
        f"{origin}: {who}: invalid value at key '{key or '(top level)'}'",
        expected=str(error.schema.get("description") or f"{error.validator}: {error.validator_value!r}"),
        found=error.message,
        fix=f"correct the value against harness/schemas/{SCHEMA_PATH.name}",
    )


def _bounds(raw: Any) -> Bounds | None:
    return None if raw is None else Bounds(worst=raw["worst"], best=raw["best"])


def _entry(raw: Mapping[str, Any]) -> TaskEntry:
    return TaskEntry(
        name=raw["name"],
        formal_name=raw["formal_name"],
        domain=raw["domain"],
        metric=raw["metric"],
        direction=raw["direction"],
        worst=raw["worst"],
        best=raw["best"],
        track_a=raw["track_a"],
        track_b=raw["track_b"],
        visibility=raw["visibility"],
        supported=raw["supported"],
        xares_module=raw["xares_module"],
        config_function=raw["config_function"],
        unsupported_reason=raw["unsupported_reason"],
        eval_weight=raw["eval_weight"],
        paper_name=raw["paper_name"],
        page_name=raw["page_name"],
        page_baseline_name=raw["page_baseline_name"],
        sources=tuple(raw["sources"]),
        paper_task_type=raw["paper_task_type"],
        task_type=raw["task_type"],
        paper_metric=raw["paper_metric"],
        paper_bounds=_bounds(raw["paper_bounds"]),
        xares_bounds=_bounds(raw["xares_bounds"]),
        bounds_follow=raw["bounds_follow"],
        paper_classes=raw["paper_classes"],
        xares_output_dim=raw["xares_output_dim"],
        xares_do_knn=raw["xares_do_knn"],
        xares_private=raw["xares_private"],
        xares_disabled=raw["xares_disabled"],
        overrides_xares_disabled=raw["overrides_xares_disabled"],
        crop_length=raw["crop_length"],
        audio_tar_globs=None if raw["audio_tar_globs"] is None else tuple(raw["audio_tar_globs"]),
        k_fold=raw["k_fold"],
        k_fold_splits=None if raw["k_fold_splits"] is None else tuple(raw["k_fold_splits"]),
        external_dependencies=tuple(raw["external_dependencies"]),
        pretrained_dependencies=tuple(raw["pretrained_dependencies"]),
        notes=tuple(raw["notes"]),
        task_sets={name: tuple(tracks) for name, tracks in raw["task_sets"].items()},
    )


def registry_from_dict(data: Any, *, origin: str = "task registry", source: Path | None = None) -> Registry:
    """Validate raw registry JSON and build the frozen `Registry`.

    Raises:
        ConfigError: naming the task and the key that break the schema or a cross-field rule.
    """
    validator = jsonschema.Draft202012Validator(_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        raise _explain(error, data, origin)
    return Registry(
        entries=tuple(_entry(raw) for raw in data["tasks"]),
        schema_version=data["schema_version"],
        xares_version=data["xares_version"],
        precedence=dict(data["precedence"]),
        source=source,
        task_sets=tuple(TaskSetInfo(name, info["description"], info["source"])
                        for name, info in data["task_sets"].items()),
    )


def load_registry(path: Path | str = DEFAULT_REGISTRY) -> Registry:
    """Read, validate and return the task registry (default: harness/tasks/registry.json).

    Raises:
        ConfigError: unreadable file, invalid JSON, or a task that breaks the schema or a rule.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"task registry {path} cannot be read",
            expected="a readable JSON file",
            found=f"{type(exc).__name__}: {exc.strerror or exc}",
            fix="pass the path of a task registry, or restore harness/tasks/registry.json",
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"task registry {path} is not valid JSON",
            expected="JSON",
            found=f"{exc.msg} at line {exc.lineno}, column {exc.colno}",
            fix="fix the syntax error",
        ) from None
    return registry_from_dict(data, origin=path.name, source=path)
