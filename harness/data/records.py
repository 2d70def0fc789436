"""Which Zenodo record holds each task's data, and what that record holds.

**Record ids come from X-ARES itself.** Each X-ARES 0.1.3 task module passes `zenodo_id="..."` to
`TaskConfig(...)` (`tasks/esc50_task.py`: `zenodo_id="14614287"`); X-ARES's own downloader uses exactly
that id. The harness reads it from the module with `ast` (never importing it: the host has neither
torch nor X-ARES), the way `harness.tasks.models` reads `pretrained_dependencies` and
`harness.tasks.arguments` reads `name`. There is no copied table: a different X-ARES gives different
ids with no change here.

Where the modules are read: from the runtime image, the one that scores. Its `tasks/` package is copied
out once per image id into `$AECC_HOME/xares-tasks/<image id>/tasks/` (a container is created, never
started; `xares_tasks_from_image`). This is the very code whose `TaskConfig` the prepare and score
stages build, so what is fetched is what will be read. A machine that fetches but cannot build the
image (a download host without Docker) points `--xares-tasks DIR` at the `tasks/` folder of the
xares 0.1.3 wheel (`pip download --no-deps xares==0.1.3`, then unzip). A task given as a module file
(`--tasks my_task.py`) is read from that file.

**Records through Zenodo's REST API.** `GET {api}/records/{id}` answers the record: its files with
`key`, `size` and `checksum` (`"md5:<hex>"`), its `metadata.version` and `revision`; files are read
from `{api}/records/{id}/files/{key}/content` (Range supported). The API's base URL is a setting
(`--zenodo-api`), so a stand-in can answer in Zenodo's place; links inside the answer are not
followed, so a stand-in's answer cannot send the download elsewhere. A record whose files are not
open (`metadata.access_right` other than `open`, `access.files` other than `public`, or HTTP 401/403)
is `RecordRestricted`: its data has to be placed by hand.

**A mirror** (`--from URL`) is an organizer's HTTP server laid out like ENV: `URL/<task>/manifest.json`
(the manifest `aecc data fetch` wrote) and `URL/<task>/<file>`. Its manifest must name the record
X-ARES names for the task.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import hashlib
import re
import shutil
import tarfile
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from harness.data.download import Expected, FetchError, Http, HttpRefused
from harness.data.layout import expected_layout
from harness.errors import InfraError, UsageError

DEFAULT_ZENODO_API = "https://zenodo.org/api"
#: where X-ARES's task modules are in the runtime image (harness.layers.model: /opt/venv, Python 3.11)
IMAGE_TASKS_PATH = "/opt/venv/lib/python3.11/site-packages/tasks"
_RECORD_ID = re.compile(r"^[0-9]{1,12}$")
_HEX = re.compile(r"^[0-9a-f]+$")
#: a task's folder under ENV (the manifest schema's pattern)
_TASK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class RecordRestricted(FetchError):
    """Zenodo holds the record but does not give its files out: the organizer places them by hand."""


class RecordMissing(FetchError):
    """No such record (404) or it was deleted (410)."""


# --------------------------------------------------------------------------------------------------
# X-ARES task modules, read with ast


@dataclasses.dataclass(frozen=True)
class TaskFacts:
    """What a task module's `TaskConfig(...)` call says, read without running it."""

    file: Path
    name: str | None
    zenodo_id: str | None
    private: bool
    #: why zenodo_id could not be read (not a literal), else ""
    problem: str = ""


def _task_config_call(tree: ast.AST) -> ast.Call | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if callee == "TaskConfig":
                return node
    return None


def read_task_facts(path: Path | str) -> TaskFacts:
    """`name`, `zenodo_id` and `private` of the `TaskConfig(...)` call in a task module.

    Raises:
        UsageError: the file cannot be read or parsed, or holds no `TaskConfig(...)` call.
    """
    path = Path(path)
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise UsageError(f"task module {path} cannot be read", expected="an X-ARES task module (*_task.py)",
                         found=f"{type(exc).__name__}: {exc}", fix="pass the task's *_task.py file") from None
    call = _task_config_call(tree)
    if call is None:
        raise UsageError(f"task module {path} has no TaskConfig(...) call", expected="X-ARES's task module form",
                         found="no call to TaskConfig", fix="pass the task's *_task.py file")
    values: dict[str, Any] = {}
    problem = ""
    for kw in call.keywords:
        if kw.arg not in ("name", "zenodo_id", "private"):
            continue
        try:
            values[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            if kw.arg == "zenodo_id":
                problem = f"zenodo_id is not a literal (line {kw.value.lineno}): it cannot be read without running " \
                          "the module"
    zenodo_id = values.get("zenodo_id")
    if zenodo_id is not None:
        zenodo_id = str(zenodo_id).strip()
        if not _RECORD_ID.match(zenodo_id):
            problem = f"zenodo_id {zenodo_id!r} is not a Zenodo record number"
            zenodo_id = None
    name = values.get("name") if isinstance(values.get("name"), str) else None
    return TaskFacts(path, name, zenodo_id, bool(values.get("private", False)), problem)


def xares_tasks_from_image(client: Any, image: str) -> Path:
    """X-ARES's `tasks/` package, copied out of `image` once per image id (the container is created,
    never started, and removed).

    Raises:
        InfraError: the image has no X-ARES task modules where the runtime installs them.
    """
    import io

    import docker.errors

    from harness import paths
    from harness.sandbox.cleanup import owner_labels
    from harness.stage_names import Stage

    image_id = client.images.get(image).id.split(":")[-1][:16]
    target = paths.subdir("xares-tasks") / image_id / "tasks"
    if target.is_dir() and any(target.glob("*_task.py")):
        return target
    container = client.containers.create(image, command=["true"], network_disabled=True,
                                         labels=owner_labels(Stage.FETCH, "xares-tasks"))
    try:
        try:
            stream, _ = container.get_archive(IMAGE_TASKS_PATH)
        except docker.errors.NotFound:
            raise InfraError(f"the runtime image {image} has no X-ARES task modules",
                             expected=f"{IMAGE_TASKS_PATH}/*_task.py (xares 0.1.3)", found="absent",
                             fix="rebuild the runtime image (`aecc images build`), or pass --xares-tasks DIR") from None
        staging = Path(tempfile.mkdtemp(prefix=".tasks-", dir=paths.subdir("xares-tasks")))
        try:
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                tar.extractall(staging, filter="data")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():  # another process may have copied it meanwhile: same bytes
                (staging / "tasks").rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        container.remove(force=True)
    return target


def runtime_xares_tasks() -> Path:
    """The task modules of this machine's current runtime image.

    Raises:
        ImageBuildError / EngineUnavailable: no engine, or the runtime image is not built (with the fix,
            which also names --xares-tasks DIR).
    """
    from harness.errors import HarnessError
    from harness.layers.build import require_image
    from harness.layers.model import runtime_layer
    from harness.sandbox import engine

    try:
        client = engine.connect()
        image = require_image(client, runtime_layer())
    except HarnessError as exc:
        exc.fix = (exc.fix + "; or " if exc.fix else "") + \
            "on a machine without the runtime image pass --xares-tasks DIR: the tasks/ folder of the xares 0.1.3 " \
            "wheel (pip download --no-deps xares==0.1.3; unzip it)"
        raise type(exc)(exc.summary, expected=exc.expected, found=exc.found, fix=exc.fix,
                        log_path=exc.log_path) from None
    return xares_tasks_from_image(client, image)


# --------------------------------------------------------------------------------------------------
# Which tasks, and how each gets its data


class Availability(str, enum.Enum):
    ZENODO = "zenodo"  # X-ARES names a public Zenodo record
    PLACE_YOURSELF = "place_yourself"  # a hidden/private task, or X-ARES names no record
    NO_MODULE = "no_module"  # X-ARES 0.1.3 has no module for it: nothing to fetch, nothing scores it


@dataclasses.dataclass(frozen=True)
class DataTask:
    """One task's data: its folder under ENV (X-ARES's `TaskConfig.name`), its record, and why not."""

    name: str
    availability: Availability
    module: str | None = None  # "tasks.esc50_task", or the task file's path
    zenodo_id: str | None = None
    hidden: bool = False
    patterns: tuple[str, ...] = ()  # X-ARES's shard globs, where the registry knows them
    reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _TASK_NAME.match(self.name):
            raise UsageError(f"task name {self.name!r} cannot be a folder under ENV",
                             expected="letters, digits, '_', '.', '-' (X-ARES's TaskConfig.name)",
                             found=repr(self.name), fix="fix the name= of the task module's TaskConfig")
        object.__setattr__(self, "availability", Availability(self.availability))
        object.__setattr__(self, "patterns", tuple(self.patterns))
        if self.availability is Availability.ZENODO and not self.zenodo_id:
            raise UsageError(f"task {self.name}: no Zenodo record id", expected="X-ARES's TaskConfig.zenodo_id",
                             found="none")

    def layout(self, env: Path | str) -> str:
        return expected_layout(env, self.name, self.patterns)


def _module_file(tasks_dir: Path, module: str) -> Path:
    return Path(tasks_dir) / (module.rsplit(".", 1)[-1] + ".py")


def plan_tasks(tasks: Sequence[str] | None = None, task_set: str | None = None, *, registry: Any = None,
               xares_tasks: Path | Callable[[], Path] | None = None) -> tuple[DataTask, ...]:
    """The tasks named (registry names or task module files) or those of a task set (either track),
    each with how its data comes: a Zenodo record (X-ARES's `zenodo_id`), by hand, or not at all.

    `xares_tasks` is the folder of X-ARES's task modules, or a function that finds it (called only when
    a registry task needs it; default `runtime_xares_tasks`).

    Raises:
        UsageError: neither or both of `tasks` and `task_set`; an unknown name or set; a bad module file.
    """
    from harness.tasks.arguments import TaskSourceKind, resolve_task_argument
    from harness.tasks.registry import load_registry

    if bool(tasks) == bool(task_set):
        raise UsageError("name the tasks to fetch", expected="--tasks NAME|FILE... or --task-set NAME (one of them)",
                         found="both" if tasks else "neither", fix="e.g. --task-set icme2025-final")
    registry = registry or load_registry()
    finder: Callable[[], Path] = (xares_tasks if callable(xares_tasks) else (lambda: Path(xares_tasks))) \
        if xares_tasks is not None else runtime_xares_tasks
    found_dir: list[Path] = []

    def modules() -> Path:
        if not found_dir:
            folder = Path(finder())
            if not folder.is_dir() or not any(folder.glob("*_task.py")):
                raise UsageError(f"{folder} holds no X-ARES task modules", expected="X-ARES's tasks/ folder "
                                 "(*_task.py)", found="missing" if not folder.exists() else "no *_task.py",
                                 fix="pass --xares-tasks with the tasks/ folder of the xares 0.1.3 wheel")
            found_dir.append(folder)
        return found_dir[0]

    entries: list[Any] = []
    if task_set:
        registry.task_set_info(task_set)
        entries = [e for e in registry if e.task_sets.get(task_set)]
    out: list[DataTask] = []
    for arg in tasks or ():
        source = resolve_task_argument(arg, registry=registry, allow_unsupported=True)
        if source.kind is TaskSourceKind.MODULE:
            out.append(_from_facts(read_task_facts(source.path), str(source.path), source.name, hidden=False,
                                   patterns=()))
        else:
            entries.append(registry.get(source.name))
    for entry in entries:
        if not entry.xares_module:
            out.append(DataTask(entry.name, Availability.NO_MODULE, hidden=entry.hidden,
                                reason=entry.unsupported_reason or "X-ARES 0.1.3 has no module for it"))
            continue
        facts = read_task_facts(_module_file(modules(), entry.xares_module))
        out.append(_from_facts(facts, entry.xares_module, entry.name, hidden=entry.hidden,
                               patterns=entry.audio_tar_globs or ()))
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise UsageError("a task is named twice", expected="distinct tasks", found=", ".join(names))
    return tuple(out)


def _from_facts(facts: TaskFacts, module: str, fallback: str, *, hidden: bool, patterns: Iterable[str]) -> DataTask:
    name = facts.name or fallback
    if facts.problem:
        return DataTask(name, Availability.PLACE_YOURSELF, module, None, hidden, tuple(patterns),
                        f"X-ARES's record id cannot be read: {facts.problem}")
    if facts.private or hidden:
        why = "a hidden dataset (X-ARES private=True): only the organizers have its audio" if facts.private \
            else "a hidden dataset (the paper's dagger): only the organizers have its audio"
        return DataTask(name, Availability.PLACE_YOURSELF, module, facts.zenodo_id, True, tuple(patterns), why)
    if not facts.zenodo_id:
        return DataTask(name, Availability.PLACE_YOURSELF, module, None, hidden, tuple(patterns),
                        "its task module names no Zenodo record (zenodo_id)")
    return DataTask(name, Availability.ZENODO, module, facts.zenodo_id, hidden, tuple(patterns))


# --------------------------------------------------------------------------------------------------
# Records


class SourceKind(str, enum.Enum):
    ZENODO = "zenodo"  # Zenodo's REST API (or a stand-in answering like it)
    MIRROR = "mirror"  # an organizer's HTTP mirror laid out like ENV


@dataclasses.dataclass(frozen=True)
class RecordFile:
    key: str
    size: int
    #: algorithm -> hex: the record's own checksum ("md5"), plus sha256 where a mirror's manifest has it
    checksums: Mapping[str, str]
    url: str

    @property
    def checksum(self) -> str:
        """The record's checksum as Zenodo writes it ("md5:<hex>")."""
        algorithm = "md5" if "md5" in self.checksums else min(self.checksums)
        return f"{algorithm}:{self.checksums[algorithm]}"

    def expected(self) -> Expected:
        return Expected(self.size, dict(self.checksums))


@dataclasses.dataclass(frozen=True)
class Record:
    record_id: str
    version: str | None
    revision: int | None
    doi: str | None
    files: tuple[RecordFile, ...]
    source: SourceKind
    source_url: str

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)


def api_url(api: str) -> str:
    """Validate and normalise a --zenodo-api / --from base URL.

    Raises:
        UsageError: not an http(s) URL.
    """
    text = str(api).strip().rstrip("/")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{api!r} is not an HTTP URL", expected="https://host[:port][/path]", found=repr(api),
                         fix=f"e.g. --zenodo-api {DEFAULT_ZENODO_API}")
    return text


def _q(key: str) -> str:
    return urllib.parse.quote(key, safe="")


def parse_checksum(value: Any) -> tuple[str, str] | None:
    """("md5", hex) from Zenodo's "md5:<hex>" (a bare hex string is md5, as in Zenodo's old API)."""
    if not isinstance(value, str):
        return None
    algorithm, _, digest = value.strip().lower().rpartition(":")
    algorithm = algorithm or "md5"
    if algorithm not in hashlib.algorithms_guaranteed or not _HEX.match(digest):
        return None
    if len(digest) != hashlib.new(algorithm).digest_size * 2:
        return None
    return algorithm, digest


def _files_of(data: Mapping[str, Any]) -> list[Any] | None:
    files = data.get("files")
    if isinstance(files, dict):  # InvenioRDM's own form: {"entries": {key: {...}} or [...], ...}
        entries = files.get("entries")
        if isinstance(entries, dict):
            return list(entries.values())
        return entries if isinstance(entries, list) else None
    return files if isinstance(files, list) else None


def _restriction(data: Mapping[str, Any]) -> str | None:
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    right = meta.get("access_right")
    if right is not None and right != "open":
        return f"metadata.access_right is {right!r}"
    access = data.get("access") if isinstance(data.get("access"), dict) else {}
    for part in ("record", "files"):
        value = access.get(part)
        if value is not None and value != "public":
            return f"access.{part} is {value!r}"
    return None


def parse_record(data: Any, *, api: str, record_id: str) -> Record:
    """A Zenodo record answer, checked.

    Raises:
        RecordRestricted: the record's files are not open.
        FetchError: the answer is not a record, names another record, or a file lacks a key, size or checksum.
    """
    url = f"{api}/records/{record_id}"
    if not isinstance(data, dict):
        raise FetchError(f"Zenodo record {record_id}: not a record", expected="a JSON object",
                         found=type(data).__name__)
    restriction = _restriction(data)
    files = _files_of(data)
    if restriction is not None or (files is None and data.get("id") is not None):
        raise RecordRestricted(f"Zenodo record {record_id} does not give its files out",
                               expected="an open record whose files anyone can download",
                               found=restriction or "no files listed", fix="place the task's data yourself (request "
                               "access from the record's owners), then `aecc data verify`")
    answered = str(data.get("id", ""))
    if answered != record_id:
        raise FetchError(f"Zenodo record {record_id}: the API answered another record", expected=f"record {record_id}",
                         found=f"record {answered or '(no id)'} from {url}", fix="check --zenodo-api")
    out = []
    for i, item in enumerate(files or ()):
        item = item if isinstance(item, dict) else {}
        key = item.get("key", item.get("filename"))
        size = item.get("size", item.get("filesize"))
        checksum = parse_checksum(item.get("checksum"))
        if not isinstance(key, str) or not key or isinstance(size, bool) or not isinstance(size, int) or size < 0 \
                or checksum is None:
            raise FetchError(f"Zenodo record {record_id}: file #{i} is not described", expected="key, size and "
                             "checksum ('md5:<hex>') for every file", found=repr(item)[:300])
        out.append(RecordFile(key, size, {checksum[0]: checksum[1]},
                              f"{api}/records/{record_id}/files/{_q(key)}/content"))
    if not out:
        raise FetchError(f"Zenodo record {record_id} lists no files", expected="at least one file", found="none")
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    version = meta.get("version")
    revision = data.get("revision")
    doi = data.get("doi") or meta.get("doi")
    return Record(record_id, str(version) if version is not None else None,
                  revision if isinstance(revision, int) and not isinstance(revision, bool) else None,
                  str(doi) if doi else None, tuple(out), SourceKind.ZENODO, api)


def read_record(http: Http, api: str, record_id: str, *, note: Callable[[str], None] = lambda m: None) -> Record:
    """Zenodo's answer for `record_id`, through `http` (retries, 429).

    Raises:
        RecordRestricted: HTTP 401/403, or the record's files are not open.
        RecordMissing: HTTP 404/410.
        FetchError: anything else that stops it.
    """
    api = api_url(api)
    url = f"{api}/records/{_q(record_id)}"
    try:
        data = http.get_json(url, what=f"Zenodo record {record_id}", note=note)
    except HttpRefused as exc:
        if exc.status in (401, 403):
            raise RecordRestricted(f"Zenodo record {record_id} is restricted", expected="an open record",
                                   found=exc.found, fix="place the task's data yourself (request access from the "
                                   "record's owners), then `aecc data verify`") from None
        raise RecordMissing(f"Zenodo record {record_id} does not exist at {api}", expected=f"HTTP 200 from {url}",
                            found=exc.found, fix="check --zenodo-api; X-ARES's record id is read from its task "
                            "module") from None
    files = data.get("files") if isinstance(data, dict) else None
    if isinstance(files, dict) and _files_of(data) is None and files.get("enabled", True) \
            and _restriction(data) is None:
        # InvenioRDM may leave the entries out of the record: its files endpoint lists them
        listing = http.get_json(f"{url}/files", what=f"Zenodo record {record_id}'s files", note=note)
        if isinstance(listing, dict):
            data = {**data, "files": {**files, "entries": listing.get("entries")}}
    return parse_record(data, api=api, record_id=record_id)


def read_mirror(http: Http, mirror: str, task: str, *, note: Callable[[str], None] = lambda m: None) -> Any:
    """The task's manifest on an organizer's mirror (`URL/<task>/manifest.json`), checked against the
    schema; None when the mirror does not have the task (404).

    Raises:
        FetchError: unreadable or not a manifest.
    """
    from harness.data.manifest import MANIFEST_NAME, TaskManifest

    mirror = api_url(mirror)
    url = f"{mirror}/{_q(task)}/{MANIFEST_NAME}"
    try:
        data = http.get_json(url, what=f"mirror manifest of {task}", note=note)
    except HttpRefused as exc:
        if exc.status == 404:
            return None
        raise
    manifest = TaskManifest.from_dict(data, origin=url)
    if manifest.task != task:
        raise FetchError(f"mirror {mirror}: {url} is the manifest of task {manifest.task!r}",
                         expected=f"task {task!r}", found=repr(manifest.task), fix="fix the mirror's layout")
    return manifest


def mirror_record(manifest: Any, mirror: str) -> Record:
    """The record a mirror's manifest describes, its files read from the mirror."""
    mirror = api_url(mirror)
    files = []
    for f in manifest.files:
        algorithm, digest = parse_checksum(f.checksum) or ("md5", "")
        files.append(RecordFile(f.path, f.bytes, {algorithm: digest, "sha256": f.sha256},
                                f"{mirror}/{_q(manifest.task)}/" + "/".join(_q(p) for p in f.path.split("/"))))
    return Record(manifest.record.record_id, manifest.record.version, manifest.record.revision, manifest.record.doi,
                  tuple(files), SourceKind.MIRROR, mirror)


__all__ = ["Availability", "DEFAULT_ZENODO_API", "DataTask", "IMAGE_TASKS_PATH", "Record", "RecordFile",
           "RecordMissing", "RecordRestricted", "SourceKind", "TaskFacts", "api_url", "mirror_record",
           "parse_checksum", "parse_record", "plan_tasks", "read_mirror", "read_record", "read_task_facts",
           "runtime_xares_tasks", "xares_tasks_from_image"]
