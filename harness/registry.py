"""The task registry: every challenge task as data, and the paper's metric normalisation.

`harness/tasks/registry.json` lists every task of the paper's Table 1 and of the challenge page
(their union), plus the X-ARES 0.1.3 tasks that neither lists, each with what the paper says and
what X-ARES 0.1.3 does. Where they disagree the registry records both; the rule (docs/TASKS.md):
X-ARES 0.1.3 is the scoring engine, so its task definitions, metric and `eval_weight` are used; the
paper's Table 1 decides Track A/B membership and hidden datasets; the normalisation bounds are the
paper's definition (worst and best possible value of the metric) on the scale X-ARES returns.

Importing this module reads nothing; `load_registry()` reads and validates the file.
Standard library + jsonschema only: the host has no torch, so X-ARES task modules are read with
`ast`, never imported.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import enum
import json
import math
from pathlib import Path
from typing import Any, Iterator, Mapping

import jsonschema

from harness.errors import ConfigError, UsageError

_HERE = Path(__file__).resolve().parent
DEFAULT_REGISTRY = _HERE / "tasks" / "registry.json"
SCHEMA_PATH = _HERE / "schemas" / "task-registry.schema.json"

#: X-ARES picks the task factory as the one module attribute whose name ends with this.
CONFIG_SUFFIX = "_config"
#: a task module larger than this is not an X-ARES task file (the largest in 0.1.3 is ~40 KB)
MAX_TASK_MODULE_BYTES = 4 * 1024 * 1024


class Direction(str, enum.Enum):
    """Which way a metric improves."""

    HIGHER = "higher"
    LOWER = "lower"


class Visibility(str, enum.Enum):
    """`hidden`: the paper's dagger datasets, whose audio participants never see."""

    PUBLIC = "public"
    HIDDEN = "hidden"


@dataclasses.dataclass(frozen=True)
class Bounds:
    worst: float
    best: float


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
    crop_length: int | None = None
    k_fold: bool = False
    k_fold_splits: tuple[int, ...] | None = None
    external_dependencies: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

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
            if not self.xares_module or not self.config_function:
                self._fail("xares_module", "an X-ARES module and config function for a supported task",
                           f"xares_module={self.xares_module!r}, config_function={self.config_function!r}")
            if not self.eval_weight:
                self._fail("eval_weight", "a positive X-ARES eval_weight for a supported task", repr(self.eval_weight))
        elif not (self.unsupported_reason and self.unsupported_reason.strip()):
            self._fail("unsupported_reason", "a reason for every unsupported task", repr(self.unsupported_reason))

        if (self.xares_module is None) != (self.config_function is None):
            self._fail("config_function", "xares_module and config_function both set or both null",
                       f"xares_module={self.xares_module!r}, config_function={self.config_function!r}")
        if self.config_function is not None and not self.config_function.endswith(CONFIG_SUFFIX):
            self._fail("config_function", f"a name ending in {CONFIG_SUFFIX!r} (X-ARES's rule)",
                       repr(self.config_function))
        if self.track_b and not self.track_a:
            self._fail("track_b", "Track B tasks to be a subset of Track A (paper, Table 1)",
                       "track_b=true, track_a=false")
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
        crop_length=raw["crop_length"],
        k_fold=raw["k_fold"],
        k_fold_splits=None if raw["k_fold_splits"] is None else tuple(raw["k_fold_splits"]),
        external_dependencies=tuple(raw["external_dependencies"]),
        notes=tuple(raw["notes"]),
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


# --------------------------------------------------------------------------------------------------
# Task arguments: a registry name or an X-ARES-style task module file


class TaskSourceKind(str, enum.Enum):
    REGISTRY = "registry"
    MODULE = "module"


@dataclasses.dataclass(frozen=True)
class TaskSource:
    """Where a task comes from: a registry entry (X-ARES's own module) or a task module file.

    `name` is the registry name, or for a file the literal `name=` passed to `TaskConfig(...)` in
    the config function when there is one, else the file's stem. `module` is the dotted X-ARES
    module for a registry task; `path` the file for a module task.
    """

    kind: TaskSourceKind
    name: str
    config_function: str
    module: str | None = None
    path: Path | None = None


def _refuse_module(path: Path, summary: str, expected: str, found: str, fix: str) -> UsageError:
    return UsageError(f"task module {path}: {summary}", expected=expected, found=found, fix=fix)


def _literal_task_name(func: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    for node in ast.walk(func):
        if isinstance(node, ast.Call):
            callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if callee == "TaskConfig":
                for kw in node.keywords:
                    if kw.arg == "name" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                        return kw.value.value
    return None


def inspect_task_module(path: Path | str) -> TaskSource:
    """Check a task module file without importing it and describe it.

    X-ARES (`xares.utils.attr_from_py_path`) takes the single module attribute whose name ends in
    `_config`; this check is stricter so that what X-ARES will pick is known before any container
    starts: exactly one top-level function named `*_config`, and no other top-level binding
    (assignment, import, class) with such a name, and no star import that could add one.

    Raises:
        UsageError: not a readable `.py` file, a syntax error, or not exactly one `*_config` function.
    """
    path = Path(path)
    rule = f"a .py file with exactly one top-level function whose name ends in {CONFIG_SUFFIX!r}"
    if path.suffix != ".py":
        raise _refuse_module(path, "not a Python file", rule, f"suffix {path.suffix or '(none)'!r}",
                             "pass a task module such as my_task.py, or a registry task name")
    if not path.is_file():
        raise _refuse_module(path, "no such file", rule, "missing or not a regular file",
                             "check the path, or pass a registry task name")
    size = path.stat().st_size
    if size > MAX_TASK_MODULE_BYTES:
        raise _refuse_module(path, "too large for a task module", f"<= {MAX_TASK_MODULE_BYTES} bytes",
                             f"{size} bytes", "pass the task's *_task.py file")
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError) as exc:
        raise _refuse_module(path, "does not parse", "valid Python 3", f"{type(exc).__name__}: {exc}",
                             "fix the syntax error") from None

    functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    others: list[str] = []
    star_imports: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name.endswith(CONFIG_SUFFIX):
                functions.append(node)
        elif isinstance(node, ast.ClassDef):
            if node.name.endswith(CONFIG_SUFFIX):
                others.append(f"class {node.name} (line {node.lineno})")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    star_imports.append(f"line {node.lineno}")
                    continue
                bound = alias.asname or alias.name.split(".")[0]
                if bound.endswith(CONFIG_SUFFIX):
                    others.append(f"import {bound} (line {node.lineno})")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name) and sub.id.endswith(CONFIG_SUFFIX):
                        others.append(f"{sub.id} = ... (line {node.lineno})")

    found = [f"def {f.name} (line {f.lineno})" for f in functions] + others
    if star_imports:
        raise _refuse_module(path, "has a star import", rule + " and no 'from ... import *'",
                             "star import at " + ", ".join(star_imports),
                             "import names explicitly: a star import may bring in another *_config "
                             "and X-ARES would refuse the module")
    if len(functions) != 1 or others:
        raise _refuse_module(path, f"has {len(found)} top-level names ending in {CONFIG_SUFFIX!r}", rule,
                             ", ".join(found) if found else "none",
                             "define exactly one task factory, e.g. 'def mytask_config(encoder) -> TaskConfig', "
                             "and rename the others (X-ARES picks the single attribute ending in '_config')")
    func = functions[0]
    name = _literal_task_name(func) or path.stem.removesuffix("_task")
    return TaskSource(kind=TaskSourceKind.MODULE, name=name, config_function=func.name, path=path.resolve())


def resolve_task_argument(arg: str, *, registry: Registry | None = None,
                          allow_unsupported: bool = False) -> TaskSource:
    """Turn a command-line task argument into a `TaskSource`.

    An argument that ends in `.py`, contains a path separator or names an existing file is a task
    module file (checked by `inspect_task_module`); anything else is a registry name.

    Raises:
        UsageError: unknown name (with a did-you-mean), a task X-ARES 0.1.3 cannot run (unless
            `allow_unsupported` and it has a module), or a refused module file.
        ConfigError: the registry itself is invalid.
    """
    text = str(arg).strip()
    if not text:
        raise UsageError("empty task argument", expected="a registry task name or a path to a *_task.py file",
                         found="''", fix="name a task, e.g. esc50")
    candidate = Path(text).expanduser()
    if text.endswith(".py") or "/" in text or "\\" in text or candidate.is_file():
        return inspect_task_module(candidate)

    reg = registry if registry is not None else load_registry()
    entry = reg.get(text)
    if entry.xares_module is None or entry.config_function is None:
        raise UsageError(
            f"task '{entry.name}' cannot be run: X-ARES {reg.xares_version or '0.1.3'} has no module for it",
            expected="a task X-ARES implements",
            found=entry.unsupported_reason or "no xares_module",
            fix="pick a supported task (see docs/TASKS.md), or pass your own task module file",
        )
    if not entry.supported and not allow_unsupported:
        raise UsageError(
            f"task '{entry.name}' is not supported by the harness",
            expected="a supported task",
            found=entry.unsupported_reason or "unsupported",
            fix="pick a supported task (see docs/TASKS.md)",
        )
    return TaskSource(kind=TaskSourceKind.REGISTRY, name=entry.name, config_function=entry.config_function,
                      module=entry.xares_module)
