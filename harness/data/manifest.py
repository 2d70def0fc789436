"""`ENV/<task>/manifest.json`: what a fetch put into a task folder, and `aecc data verify` against it.

The manifest (schema: harness/schemas/data-manifest.schema.json) lists every file of the task's
record with its size, the record's own checksum (Zenodo's `md5:<hex>`) and a sha256, every file
unpacked from a ZIP of the record, the record's id, version and revision, and where it came from. It
is written (atomically) after every file checked and before the marker, and not rewritten when a
later fetch finds the folder unchanged: the prepare stage's cache key is a hash of every file in the
task folder, this one included, so an unchanged task keeps its prepared cache.

`verify_task` re-checks a folder against its manifest and names each problem with what was expected,
what was found and what to do:

| finding | meaning |
|---|---|
| `missing` | a listed file is not there |
| `truncated` | a listed file is shorter than recorded (an interrupted copy) |
| `changed` | a listed file is longer, or of the recorded size with other bytes |
| `extra` | a file the manifest does not list (prepare's cache key covers it too) |
| `partial` | an interrupted download (`.aecc-download/`) |
| `not_regular` | a listed name is a link or a special file |
| `no_marker` | `.audio_tar_ready` is missing: the fetch did not finish |
| `bad_manifest` | manifest.json is unreadable or does not follow its schema |
| `no_folder` | a task that was asked for has no folder |

A folder without a manifest (data placed by hand, a hidden task, X-ARES's own download) is reported as
`unmanaged`: nothing to check it against, ready when its marker is there.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import stat
import time
from pathlib import Path
from typing import Any, Sequence

from harness.data import layout
from harness.data.layout import MANIFEST_NAME, MARKER
from harness.errors import InfraError

SCHEMA_NAME = "data-manifest"
KIND = "aecc-task-data"
MANIFEST_CAP = 16 * 1024**2


class ManifestInvalid(InfraError):
    """A manifest.json that cannot be read or does not follow its schema."""


# --------------------------------------------------------------------------------------------------
# The document


@dataclasses.dataclass(frozen=True)
class ManifestFile:
    path: str
    bytes: int
    checksum: str  # the record's own: "md5:<hex>"
    sha256: str


@dataclasses.dataclass(frozen=True)
class UnpackedFile:
    path: str
    archive: str
    bytes: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class RecordInfo:
    record_id: str
    version: str | None
    revision: int | None
    doi: str | None
    bytes: int


@dataclasses.dataclass(frozen=True)
class TaskManifest:
    task: str
    module: str | None
    zenodo_id: str | None
    record: RecordInfo
    source_kind: str  # "zenodo" or "mirror"
    source_url: str
    fetched_at: str
    files: tuple[ManifestFile, ...]
    unpacked: tuple[UnpackedFile, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1, "kind": KIND, "task": self.task,
            "xares": {"module": self.module, "zenodo_id": self.zenodo_id},
            "record": {"id": self.record.record_id, "version": self.record.version, "revision": self.record.revision,
                       "doi": self.record.doi, "bytes": self.record.bytes},
            "source": {"kind": self.source_kind, "url": self.source_url},
            "fetched_at": self.fetched_at,
            "files": [dataclasses.asdict(f) for f in self.files],
            "unpacked": [dataclasses.asdict(f) for f in self.unpacked],
            "marker": MARKER,
        }

    @classmethod
    def from_dict(cls, data: Any, *, origin: str = MANIFEST_NAME) -> TaskManifest:
        """Raises ManifestInvalid naming what breaks the schema."""
        from harness import schemas

        found = schemas.problems(SCHEMA_NAME, data)
        if found:
            raise ManifestInvalid(f"{origin} does not follow its schema",
                                  expected=f"harness/schemas/{SCHEMA_NAME}.schema.json", found="; ".join(found),
                                  fix="fetch the task again (`aecc data fetch`); a manifest is never edited by hand")
        names = [f["path"] for f in data["files"]] + [f["path"] for f in data["unpacked"]] \
            + [f["archive"] for f in data["unpacked"]]
        unsafe = layout.name_problems(list(dict.fromkeys(names)), what="manifest entry", collisions=False)
        if unsafe:
            raise ManifestInvalid(f"{origin} lists paths that are not safe inside a task folder",
                                  expected="relative '/'-separated paths (intake's name rules)",
                                  found="; ".join(unsafe[:3]), fix="fetch the task again (`aecc data fetch`)")
        record = data["record"]
        return cls(task=data["task"], module=data["xares"]["module"], zenodo_id=data["xares"]["zenodo_id"],
                   record=RecordInfo(record["id"], record["version"], record["revision"], record["doi"],
                                     record["bytes"]),
                   source_kind=data["source"]["kind"], source_url=data["source"]["url"], fetched_at=data["fetched_at"],
                   files=tuple(ManifestFile(**f) for f in data["files"]),
                   unpacked=tuple(UnpackedFile(**f) for f in data["unpacked"]))

    def content(self) -> tuple:
        """What the folder holds according to this manifest (not when or from where it was fetched)."""
        return (self.task, self.record.record_id, self.record.version, self.record.revision,
                tuple(sorted(self.files, key=lambda f: f.path)), tuple(sorted(self.unpacked, key=lambda f: f.path)))

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files) + sum(f.bytes for f in self.unpacked)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_manifest(folder: Path, manifest: TaskManifest) -> Path:
    """Validate and write `folder/manifest.json` atomically (mode 0644)."""
    from harness import schemas
    from harness.safeio import write_atomic

    document = schemas.validate(SCHEMA_NAME, manifest.to_dict())
    return write_atomic(Path(folder) / MANIFEST_NAME, json.dumps(document, indent=1) + "\n", mode=layout.FILE_MODE)


def read_manifest(folder: Path) -> TaskManifest | None:
    """The folder's manifest, or None when it has none.

    Raises:
        ManifestInvalid: present but unreadable, not JSON, or off its schema.
    """
    from harness.safeio import UnsafeOutput, read_capped

    path = Path(folder) / MANIFEST_NAME
    if not os.path.lexists(path):
        return None
    try:
        data = json.loads(read_capped(path, MANIFEST_CAP))
    except (OSError, ValueError, UnsafeOutput) as exc:
        summary = exc.summary if isinstance(exc, UnsafeOutput) else str(exc)
        raise ManifestInvalid(f"{path} cannot be read", expected="the JSON manifest `aecc data fetch` wrote",
                              found=summary[:300], fix="fetch the task again (`aecc data fetch`)") from None
    return TaskManifest.from_dict(data, origin=str(path))


# --------------------------------------------------------------------------------------------------
# Verify


class Finding(str, enum.Enum):
    MISSING = "missing"
    TRUNCATED = "truncated"
    CHANGED = "changed"
    EXTRA = "extra"
    PARTIAL = "partial"
    NOT_REGULAR = "not_regular"
    NO_MARKER = "no_marker"
    BAD_MANIFEST = "bad_manifest"
    NO_FOLDER = "no_folder"


class TaskState(str, enum.Enum):
    READY = "ready"  # a manifest, every file as it says, the marker
    PROBLEMS = "problems"
    UNMANAGED = "unmanaged"  # no manifest (placed by hand): not checked, marker present
    ABSENT = "absent"  # asked for, no folder


@dataclasses.dataclass(frozen=True)
class Problem:
    finding: Finding
    path: str  # relative to ENV: "<task>/<file>"
    expected: str
    found: str
    fix: str

    def render(self) -> str:
        return f"{self.finding.value}: {self.path}\n  expected: {self.expected}\n  found:    {self.found}\n" \
               f"  next:     {self.fix}"

    def to_dict(self) -> dict[str, str]:
        return {"finding": self.finding.value, "path": self.path, "expected": self.expected, "found": self.found,
                "fix": self.fix}


@dataclasses.dataclass(frozen=True)
class TaskCheck:
    task: str
    folder: Path
    state: TaskState
    problems: tuple[Problem, ...] = ()
    files: int = 0
    bytes: int = 0
    record_id: str | None = None
    version: str | None = None
    marker: bool = False
    deep: bool = True  # checksums read, not only sizes

    @property
    def ok(self) -> bool:
        return self.state in (TaskState.READY, TaskState.UNMANAGED)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "folder": str(self.folder), "state": self.state.value, "ok": self.ok,
                "files": self.files, "bytes": self.bytes, "record": self.record_id, "version": self.version,
                "marker": self.marker, "checksums_read": self.deep, "problems": [p.to_dict() for p in self.problems]}


@dataclasses.dataclass(frozen=True)
class EnvCheck:
    env: Path
    tasks: tuple[TaskCheck, ...]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tasks)

    @property
    def problems(self) -> list[Problem]:
        return [p for t in self.tasks for p in t.problems]

    def to_dict(self) -> dict[str, Any]:
        return {"env": str(self.env), "ok": self.ok, "tasks": [t.to_dict() for t in self.tasks]}


def _refetch(env: Path, task: str) -> str:
    return (f"run `aecc data fetch --tasks {task} --out {env}` again (it downloads only what is missing or wrong), "
            f"or copy {task}/ again from the machine that fetched it")


def verify_task(env: Path | str, task: str, *, deep: bool = True) -> TaskCheck:
    """Check `ENV/<task>/` against its manifest; `deep=False` compares sizes only (no file is read)."""
    env = Path(env)
    folder = layout.task_dir(env, task)
    if not folder.is_dir() or folder.is_symlink():
        return TaskCheck(task, folder, TaskState.ABSENT, (Problem(
            Finding.NO_FOLDER, f"{task}/", f"a folder {folder}", "missing" if not os.path.lexists(folder) else
            "not a folder", f"`aecc data fetch --tasks {task} --out {env}`, or place the data there yourself"),),
            deep=deep)
    marker = layout.regular_file(folder / MARKER)
    try:
        manifest = read_manifest(folder)
    except ManifestInvalid as exc:
        return TaskCheck(task, folder, TaskState.PROBLEMS, (Problem(
            Finding.BAD_MANIFEST, f"{task}/{MANIFEST_NAME}", exc.expected or "", exc.found or exc.summary,
            _refetch(env, task)),), marker=marker, deep=deep)
    if manifest is None:
        if marker:
            return TaskCheck(task, folder, TaskState.UNMANAGED, marker=True, deep=deep)
        return TaskCheck(task, folder, TaskState.PROBLEMS, (Problem(
            Finding.NO_MARKER, f"{task}/{MARKER}", f"{MARKER} (X-ARES's sign that the data is complete)",
            f"missing, and no {MANIFEST_NAME} either", f"`aecc data fetch --tasks {task} --out {env}`; for data you "
            f"place yourself, create {task}/{MARKER} once every shard is there"),), deep=deep)
    problems: list[Problem] = []
    if manifest.task != task:
        problems.append(Problem(Finding.BAD_MANIFEST, f"{task}/{MANIFEST_NAME}", f"the manifest of task {task}",
                                f"the manifest of task {manifest.task}", _refetch(env, task)))
    listed = {MANIFEST_NAME, MARKER}
    for f in manifest.files:
        listed.add(f.path)
        problem = _check_file(env, task, folder, f.path, f.bytes, f.sha256, deep, md5=f.checksum)
        if problem:
            problems.append(problem)
    for f in manifest.unpacked:
        listed.add(f.path)
        problem = _check_file(env, task, folder, f.path, f.bytes, f.sha256, deep, archive=f.archive)
        if problem:
            problems.append(problem)
    for rel in layout.files_under(folder):
        if rel in listed:
            continue
        if rel.split("/", 1)[0] == layout.PARTIAL_DIR:
            size = os.lstat(folder / rel).st_size
            problems.append(Problem(Finding.PARTIAL, f"{task}/{rel}", "no partial download once the task is complete",
                                    f"an interrupted download ({size} bytes)",
                                    f"run `aecc data fetch --tasks {task} --out {env}` again to finish it"))
            continue
        size = os.lstat(folder / rel).st_size
        problems.append(Problem(
            Finding.EXTRA, f"{task}/{rel}", f"only the files {MANIFEST_NAME} lists",
            f"an extra file of {size} bytes",
            "remove it if it does not belong there (X-ARES reads only the shards its patterns name, but the prepare "
            "cache key covers every file in the task folder)"))
    if not marker:
        problems.append(Problem(Finding.NO_MARKER, f"{task}/{MARKER}", f"{MARKER}, written when every file checked",
                                "missing: the fetch did not finish, or the copy left it out",
                                f"run `aecc data fetch --tasks {task} --out {env}` again"))
    state = TaskState.PROBLEMS if problems else TaskState.READY
    return TaskCheck(task, folder, state, tuple(problems), len(manifest.files) + len(manifest.unpacked),
                     manifest.bytes, manifest.record.record_id, manifest.record.version, marker, deep)


def _check_file(env: Path, task: str, folder: Path, rel: str, size: int, sha256: str, deep: bool, *,
                md5: str | None = None, archive: str | None = None) -> Problem | None:
    shown = f"{task}/{rel}"
    origin = f" (unpacked from {archive})" if archive else ""
    fix = _refetch(env, task)
    described = f"{size} bytes, sha256 {sha256[:16]}...{origin}"
    if layout.name_problems([rel]):
        return Problem(Finding.BAD_MANIFEST, shown, "a safe relative path", repr(rel), fix)
    path = folder / rel
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Problem(Finding.MISSING, shown, described, "absent", fix)
    except OSError as exc:
        return Problem(Finding.MISSING, shown, described, f"unreadable: {exc}", fix)
    if not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) \
            else "a special file"
        return Problem(Finding.NOT_REGULAR, shown, f"a regular file of {size} bytes", kind,
                       f"replace it with the file itself; {fix}")
    if st.st_size < size:
        return Problem(Finding.TRUNCATED, shown, described, f"{st.st_size} bytes ({size - st.st_size} missing)", fix)
    if st.st_size > size:
        return Problem(Finding.CHANGED, shown, described, f"{st.st_size} bytes ({st.st_size - size} more)", fix)
    if not deep:
        return None
    found = layout.digests(path, trust_disk=False)  # read now: verify trusts no earlier run
    if found.sha256 != sha256:
        return Problem(Finding.CHANGED, shown, described + (f", {md5}" if md5 else ""),
                       f"{st.st_size} bytes with other content: sha256 {found.sha256[:16]}..., md5 {found.md5}", fix)
    if md5 and md5.startswith("md5:") and found.md5 != md5[4:]:
        return Problem(Finding.CHANGED, shown, md5, f"md5:{found.md5}", fix)
    return None


def task_folders(env: Path | str) -> list[str]:
    """The task folders directly under ENV (names that are folders, not hidden)."""
    env = Path(env)
    if not env.is_dir():
        return []
    return sorted(p.name for p in env.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))


def verify_env(env: Path | str, tasks: Sequence[str] | None = None, *, deep: bool = True) -> EnvCheck:
    """Every task folder under ENV (or exactly `tasks`, each required) against its manifest."""
    env = Path(env)
    names = list(tasks) if tasks else task_folders(env)
    return EnvCheck(env, tuple(verify_task(env, name, deep=deep) for name in names))


__all__ = ["EnvCheck", "Finding", "KIND", "MANIFEST_NAME", "ManifestFile", "ManifestInvalid", "Problem", "RecordInfo",
           "SCHEMA_NAME", "TaskCheck", "TaskManifest", "TaskState", "UnpackedFile", "now",
           "read_manifest", "task_folders", "verify_env", "verify_task", "write_manifest"]
