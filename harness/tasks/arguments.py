"""Task arguments on the command line: a registry name, or an X-ARES-style task module file.

A module file is checked with `ast`, never imported on the host: exactly one top-level function whose
name ends in `_config`, no other top-level binding with such a name and no star import, so that what
X-ARES will pick is known before any container starts.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
from pathlib import Path
from typing import Any, Mapping

from harness.errors import UsageError
from harness.tasks.registry import (
    CONFIG_SUFFIX,
    MAX_TASK_MODULE_BYTES,
    Registry,
    load_registry,
)


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


@dataclasses.dataclass(frozen=True)
class TaskRef:
    """A task to score, as the trusted containers see it: an X-ARES module (`tasks.esc50_task`) or an
    organizer's task file mounted at `module` (`/tasks/<file>`)."""

    label: str
    module: str  # module name, or the container path of a mounted file
    config_function: str | None
    file: Path | None = None
    task_name: str | None = None  # X-ARES's `name`, where it can be read without running code

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskRef:
        """A task reference from its fields as plain data (`file` a path string or None)."""
        return cls(**{**data, "file": Path(data["file"]) if data.get("file") else None})

    @property
    def digest(self) -> str:
        import hashlib

        text = self.file.read_bytes() if self.file else f"{self.module}:{self.config_function}".encode()
        return hashlib.sha256(text).hexdigest()

    def mounts(self) -> list:
        """The task file's mount, for a task that comes from a file."""
        from harness.sandbox.spec import Mount

        return [Mount(self.file, self.module)] if self.file else []


def resolve_task(arg: str, *, registry: Registry | None = None) -> TaskRef:
    """A registry name or an X-ARES-style task module file (checked with ast, never imported here).

    Raises:
        UsageError: neither a known, supported task nor a well-formed task file.
    """
    source = resolve_task_argument(arg, registry=registry)
    if source.kind is TaskSourceKind.MODULE:
        path = Path(source.path).resolve()
        return TaskRef(label=source.name, module=f"/tasks/{path.name}", config_function=source.config_function,
                       file=path, task_name=source.name)
    return TaskRef(label=source.name, module=source.module, config_function=source.config_function,
                   task_name=source.name)


def resolve_tasks(args: list[str] | tuple[str, ...], *, registry: Registry | None = None) -> tuple[TaskRef, ...]:
    """Every task argument resolved, before any work; a task named twice is a usage error."""
    tasks = tuple(resolve_task(a, registry=registry) for a in args)
    labels = [t.label for t in tasks]
    if len(set(labels)) != len(labels):
        raise UsageError("a task is named twice", expected="distinct tasks", found=", ".join(labels))
    return tasks
