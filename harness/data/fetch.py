"""`aecc data fetch`: every task's record, file by file, into ENV in X-ARES's layout.

Per task (`DataTask`, from `harness.data.records.plan_tasks`):

1. The record: Zenodo's REST API at `--zenodo-api` (X-ARES's `zenodo_id`), or an organizer's mirror
   (`--from URL`: its `URL/<task>/manifest.json`, which must name the same record). Hidden tasks and
   tasks X-ARES names no record for are listed as "place the data yourself" with the layout they need.
2. Its file names pass intake's name rules (`layout.check_names`) before anything is written.
3. What is already there is reused: a file at its name with the record's size and checksum (read
   locally, never downloaded again); a partial download is resumed; a file at its name that is shorter
   is resumed as a prefix (an interrupted copy); a changed file is replaced. Anything to download removes
   the marker (and the manifest, stale until rewritten) first.
4. The downloads of all tasks share one pool of `--jobs` threads and one bandwidth cap
   (`harness.data.download`).
5. When every file of the task checks: a ZIP of the record is unpacked with intake's archive checks,
   `manifest.json` is written (only when its content changed, so an unchanged task keeps its prepared
   cache), and `.audio_tar_ready` is written last. A task with a failed file gets no marker; the
   others go on.

A task that is complete and unchanged is left exactly as it is (`UP_TO_DATE`): nothing is written.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import os
import shutil
from pathlib import Path
from typing import Any, Protocol

from harness.data import layout
from harness.data.download import (
    Downloaded,
    Events,
    FetchError,
    FileJob,
    Http,
    NoEvents,
    RateLimiter,
    RetryPolicy,
)
from harness.data.manifest import (
    ManifestFile,
    ManifestInvalid,
    RecordInfo,
    TaskManifest,
    UnpackedFile,
    now,
    read_manifest,
    write_manifest,
)
from harness.data.records import (
    DEFAULT_ZENODO_API,
    Availability,
    DataTask,
    Record,
    RecordFile,
    api_url,
    mirror_record,
    read_mirror,
    read_record,
)
from harness.errors import HarnessError, UsageError

DEFAULT_JOBS = 4


class Outcome(str, enum.Enum):
    FETCHED = "fetched"  # something was downloaded or repaired; every file checks; marker written
    UP_TO_DATE = "up_to_date"  # complete and unchanged: nothing written
    FAILED = "failed"  # no marker; the error says why and what to do
    PLACE_YOURSELF = "place_yourself"  # hidden, restricted to the organizers, or no record
    PLACED = "placed"  # one of those, whose folder already has its marker (placed by hand; nothing to check)
    NO_MODULE = "no_module"  # X-ARES 0.1.3 has no module for it


@dataclasses.dataclass(frozen=True)
class DataFetchSpec:
    out: Path
    tasks: tuple[DataTask, ...]
    api: str = DEFAULT_ZENODO_API
    mirror: str | None = None
    jobs: int = DEFAULT_JOBS
    limit_rate: int | None = None  # bytes per second over all downloads
    retry: RetryPolicy = RetryPolicy()
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out).expanduser().absolute())
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "api", api_url(self.api))
        if self.mirror is not None:
            object.__setattr__(self, "mirror", api_url(self.mirror))
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or not 1 <= self.jobs <= 64:
            raise UsageError("--jobs must be between 1 and 64", expected="1..64 parallel downloads",
                             found=repr(self.jobs), fix="Zenodo throttles busy clients: 2 to 4 is plenty")
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--out {self.out} is not a folder", expected="the X-ARES env folder (created if missing)",
                             found="a file", fix="choose another --out")


@dataclasses.dataclass(frozen=True)
class TaskResult:
    task: DataTask
    outcome: Outcome
    detail: str = ""
    record: Record | None = None
    downloaded_files: int = 0
    downloaded_bytes: int = 0  # taken from the network by this run
    reused_files: int = 0
    error: HarnessError | None = None

    @property
    def name(self) -> str:
        return self.task.name

    def to_dict(self, env: Path) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.name, "outcome": self.outcome.value, "detail": self.detail,
                               "downloaded_files": self.downloaded_files, "downloaded_bytes": self.downloaded_bytes,
                               "reused_files": self.reused_files}
        if self.record is not None:
            out["record"] = {"id": self.record.record_id, "version": self.record.version,
                             "files": len(self.record.files), "bytes": self.record.bytes,
                             "source": self.record.source.value}
        if self.outcome is Outcome.PLACE_YOURSELF:
            out["layout"] = self.task.layout(env)
        if self.error is not None:
            out["error"] = {"summary": self.error.summary, "expected": self.error.expected,
                            "found": self.error.found, "fix": self.error.fix}
        return out


@dataclasses.dataclass(frozen=True)
class FetchReport:
    out: Path
    results: tuple[TaskResult, ...]

    @property
    def ok(self) -> bool:
        return not any(r.outcome is Outcome.FAILED for r in self.results)

    def by_outcome(self, outcome: Outcome) -> list[TaskResult]:
        return [r for r in self.results if r.outcome is outcome]

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "ok": self.ok, "tasks": [r.to_dict(self.out) for r in self.results]}


class FetchEvents(Events, Protocol):
    def planned(self, total_bytes: int, done_bytes: int) -> None: ...
    def task_finished(self, result: TaskResult) -> None: ...


class NoFetchEvents(NoEvents):
    def planned(self, total_bytes: int, done_bytes: int) -> None:
        pass

    def task_finished(self, result: TaskResult) -> None:
        pass


# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Plan:
    task: DataTask
    record: Record
    folder: Path
    prior: TaskManifest | None
    jobs: list[FileJob]
    have: dict[str, layout.Digests]  # record key -> digests of a complete file
    partial_bytes: int = 0
    downloaded: set[str] = dataclasses.field(default_factory=set)
    received: int = 0
    finished: int = 0  # download jobs done, either way
    borrowed: int = 0  # files linked from another task folder of the same record
    errors: list[HarnessError] = dataclasses.field(default_factory=list)


def _source(http: Http, spec: DataFetchSpec, task: DataTask, events: FetchEvents) -> Record | None:
    if task.availability is not Availability.ZENODO:
        return None
    if spec.mirror is None:
        return read_record(http, spec.api, task.zenodo_id, note=events.note)  # type: ignore[arg-type]
    manifest = read_mirror(http, spec.mirror, task.name, note=events.note)
    if manifest is None:
        raise FetchError(f"task {task.name}: the mirror {spec.mirror} does not have it",
                         expected=f"{spec.mirror}/{task.name}/manifest.json", found="HTTP 404",
                         fix="copy the task's folder (with its manifest.json) onto the mirror, or fetch it from "
                             "Zenodo where the internet is reachable")
    if manifest.record.record_id != task.zenodo_id:
        raise FetchError(f"task {task.name}: the mirror holds another record",
                         expected=f"Zenodo record {task.zenodo_id} (X-ARES's zenodo_id for {task.name})",
                         found=f"record {manifest.record.record_id} in {spec.mirror}/{task.name}/manifest.json",
                         fix="refresh the mirror with `aecc data fetch` for this X-ARES version")
    return mirror_record(manifest, spec.mirror)


def _matches(f: RecordFile, found: layout.Digests) -> bool:
    if found.size != f.size:
        return False
    return all(found.checksum(a) == digest for a, digest in f.checksums.items() if a in ("md5", "sha256"))


def _plan(env: Path, task: DataTask, record: Record, events: FetchEvents) -> _Plan:
    folder = layout.task_dir(env, task.name)
    layout.check_names(task.name, [f.key for f in record.files],
                       source=f"record {record.record_id} ({record.source.value})")
    for f in record.files:  # other algorithms than md5/sha256 would need a hash pass of their own
        if not set(f.checksums) <= {"md5", "sha256"}:
            raise FetchError(f"task {task.name}: {f.key} has a checksum the harness does not check",
                             expected="md5 or sha256", found=f.checksum)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise UsageError(f"{folder} is not a folder", expected="a plain folder for the task's data",
                         found="a link" if folder.is_symlink() else "a file", fix="move it away and fetch again")
    layout.make_dirs(folder)
    try:
        prior = read_manifest(folder)
    except ManifestInvalid:
        prior = None
    plan = _Plan(task, record, folder, prior, [], {})
    for f in record.files:
        dest = folder / f.key
        part = layout.partial_path(folder, f.key)
        layout.check_parents(folder, f.key, task=task.name)
        if os.path.lexists(dest):
            if layout.regular_file(dest) and os.lstat(dest).st_size == f.size and _matches(f, layout.digests(dest)):
                plan.have[f.key] = layout.digests(dest)
                continue
            if layout.regular_file(dest) and os.lstat(dest).st_size < f.size and not os.path.lexists(part):
                # an interrupted copy: its bytes are a prefix to resume from (the checksum decides)
                layout.make_dirs(part.parent)
                os.replace(dest, part)
                events.note(f"{task.name}/{f.key}: shorter than the record's file; resuming from its "
                            f"{os.lstat(part).st_size} bytes")
            else:
                events.note(f"{task.name}/{f.key}: not the record's file (size or checksum); downloading it again")
                if os.path.isdir(dest) and not os.path.islink(dest):
                    raise UsageError(f"{dest} is a folder", expected=f"the record's file {f.key}", found="a folder",
                                     fix="move it away and fetch again")
                os.unlink(dest)
        if os.path.lexists(part):
            plan.partial_bytes += min(os.lstat(part).st_size, f.size)
        plan.jobs.append(FileJob(f"{task.name}/{f.key}", f.url, dest, part, f.expected()))
    return plan


def _unpacked_ok(folder: Path, prior: TaskManifest | None, archive: str) -> list[UnpackedFile] | None:
    if prior is None:
        return None
    entries = [u for u in prior.unpacked if u.archive == archive]
    if not entries:
        return None
    for u in entries:
        path = folder / u.path
        if not layout.regular_file(path) or os.lstat(path).st_size != u.bytes \
                or layout.digests(path).sha256 != u.sha256:
            return None
    return entries


def _finish(plan: _Plan, spec: DataFetchSpec) -> tuple[bool, list[UnpackedFile]]:
    """Unpack, write the manifest (if it changed) and the marker (last). Returns (wrote anything, unpacked)."""
    folder, record, prior = plan.folder, plan.record, plan.prior
    marker = layout.regular_file(folder / layout.MARKER)
    unpacked: list[UnpackedFile] = []
    changed = bool(plan.downloaded)
    for f in record.files:
        if not layout.is_unpacked(f.key):
            continue
        kept = None if f.key in plan.downloaded else _unpacked_ok(folder, prior, f.key)
        if kept is not None:
            unpacked += kept
            continue
        changed = True
        if marker:
            layout.remove_marker(folder)
            marker = False
        for u in (prior.unpacked if prior else ()):  # our own files from an earlier unpack of it
            if u.archive == f.key and layout.regular_file(folder / u.path):
                os.unlink(folder / u.path)
        unpacked += [UnpackedFile(u.path, u.archive, u.size, u.sha256)
                     for u in layout.unpack_zip(folder, f.key, task=plan.task.name)]
    files = tuple(ManifestFile(f.key, f.size, f.checksum, plan.have[f.key].sha256) for f in record.files)
    manifest = TaskManifest(task=plan.task.name, module=plan.task.module, zenodo_id=plan.task.zenodo_id,
                            record=RecordInfo(record.record_id, record.version, record.revision, record.doi,
                                              record.bytes),
                            source_kind=record.source.value, source_url=record.source_url, fetched_at=now(),
                            files=files, unpacked=tuple(unpacked))
    if prior is None or prior.content() != manifest.content() or not os.path.isfile(folder / layout.MANIFEST_NAME):
        if marker:
            layout.remove_marker(folder)
            marker = False
        write_manifest(folder, manifest)
        changed = True
    if not marker:
        layout.write_marker(folder)
        changed = True
    layout.clear_partials(folder)
    return changed, unpacked


def _check_space(env: Path, plans: list[_Plan]) -> None:
    needed = sum(j.expected.size for p in plans for j in p.jobs) - sum(p.partial_bytes for p in plans)
    needed += sum(f.size for p in plans for f in p.record.files if layout.is_unpacked(f.key))  # at least
    free = shutil.disk_usage(env).free
    if needed > free:
        raise UsageError(f"not enough free disk space under {env}", expected=f"at least {needed / 1e9:.2f} GB free "
                         "(the downloads left, plus room to unpack the record's ZIPs)",
                         found=f"{free / 1e9:.2f} GB free", fix="free some space or choose another --out")


def fetch(spec: DataFetchSpec, events: FetchEvents | None = None, *, http: Http | None = None) -> FetchReport:
    """Fetch every task of `spec` into `spec.out`; never raises for one task's failure (it is in the report).

    Raises:
        UsageError: not enough disk space for what is left to download.
        KeyboardInterrupt: interrupted (downloads stop at their next chunk; partial files stay to resume).
    """
    events = events or NoFetchEvents()
    http = http or Http(retry=spec.retry, limiter=RateLimiter(spec.limit_rate), timeout_s=spec.timeout_s)
    env = spec.out
    layout.make_dirs(env)
    results: dict[str, TaskResult] = {}
    plans: list[_Plan] = []
    for task in spec.tasks:
        if task.availability is Availability.NO_MODULE:
            results[task.name] = TaskResult(task, Outcome.NO_MODULE, task.reason)
            events.task_finished(results[task.name])
            continue
        try:
            record = _source(http, spec, task, events)
            if record is None:
                results[task.name] = _placed(env, task, task.reason)
                events.task_finished(results[task.name])
                continue
            plan = _plan(env, task, record, events)
        except HarnessError as exc:
            from harness.data.records import RecordRestricted

            if isinstance(exc, RecordRestricted):
                results[task.name] = _placed(env, task, exc.summary, exc)
            else:
                results[task.name] = TaskResult(task, Outcome.FAILED, exc.summary, error=exc)
            events.task_finished(results[task.name])
            continue
        plans.append(plan)
    for plan in plans:  # a record two tasks share (librispeech, librispeechmalefemale): files already here
        _borrow(plan, plans, events, advance=False)
    _check_space(env, [p for p in plans if p.jobs])
    total = sum(p.record.bytes for p in plans)
    done = sum(sum(d.size for d in p.have.values()) + p.partial_bytes for p in plans)
    events.planned(total, done)
    for plan in plans:
        if plan.jobs:
            layout.remove_marker(plan.folder)  # the marker goes in last, once every file checks
            # stale until rewritten; the copy in memory (plan.prior) still says which unpacked files are ours
            (plan.folder / layout.MANIFEST_NAME).unlink(missing_ok=True)
    # One download per file of a record, however many tasks share it: the first task's plan downloads,
    # the others wait for it and link its files.
    leaders: dict[tuple[str, str], _Plan] = {}
    waiting: dict[str, list[_Plan]] = {}
    first_wave = []
    for plan in plans:
        if not plan.jobs:
            continue
        key = (plan.record.source.value, plan.record.record_id)
        if key in leaders:
            waiting.setdefault(leaders[key].task.name, []).append(plan)
        else:
            leaders[key] = plan
            first_wave.append(plan)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=spec.jobs, thread_name_prefix="aecc-data")
    running: dict[concurrent.futures.Future, tuple[_Plan, FileJob]] = {}

    def submit(plan: _Plan) -> None:
        for job in plan.jobs:
            running[pool.submit(http.download, job, events)] = (plan, job)

    def finished(plan: _Plan) -> None:
        results[plan.task.name] = _finish_task(plan, spec, events)
        for follower in waiting.pop(plan.task.name, ()):
            _borrow(follower, [plan], events, advance=True)
            if follower.jobs:
                submit(follower)
            else:
                finished(follower)

    try:
        for plan in first_wave:
            submit(plan)
        for plan in plans:
            if not plan.jobs:
                finished(plan)
        while running:
            done_now, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done_now:
                plan, job = running.pop(future)
                plan.finished += 1
                try:
                    got: Downloaded = future.result()
                except HarnessError as exc:
                    plan.errors.append(exc)
                else:
                    key = job.dest.relative_to(plan.folder).as_posix()
                    plan.have[key] = got.digests
                    plan.downloaded.add(key)
                    plan.received += got.received
                if plan.finished == len(plan.jobs):
                    finished(plan)
    except BaseException:
        http.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        layout.save_digests()
    pool.shutdown(wait=True)
    return FetchReport(env, tuple(results[t.name] for t in spec.tasks if t.name in results))


def _borrow(plan: _Plan, donors: list[_Plan], events: FetchEvents, *, advance: bool) -> None:
    """Take the files `plan` still needs from another task folder of this run that holds the same record's
    file, complete and checked: a hard link (a copy across file systems), never a second download."""
    keep = []
    for job in plan.jobs:
        key = job.dest.relative_to(plan.folder).as_posix()
        donor = next((d for d in donors if d is not plan and d.record.record_id == plan.record.record_id
                      and d.record.source is plan.record.source and key in d.have
                      and layout.regular_file(d.folder / key)), None)
        source = donor.folder / key if donor is not None else None
        if source is None or not _matches_expected(job, layout.digests(source)):
            keep.append(job)
            continue
        job.part.unlink(missing_ok=True)
        layout.make_dirs(job.dest.parent)
        try:
            os.link(source, job.dest)
        except OSError:
            layout.make_dirs(job.part.parent)
            shutil.copyfile(source, job.part)
            os.chmod(job.part, layout.FILE_MODE)
            os.replace(job.part, job.dest)
        plan.have[key] = layout.digests(job.dest)
        plan.downloaded.add(key)
        plan.borrowed += 1
        events.note(f"{plan.task.name}/{key}: the same file of record {plan.record.record_id} as "
                    f"{donor.task.name}/{key}; linked, not downloaded again")
        if advance:
            events.file_advanced(job.label, job.expected.size)
    plan.jobs = keep


def _matches_expected(job: FileJob, found: layout.Digests) -> bool:
    expected = job.expected
    return found.size == expected.size and all(found.checksum(a) == h for a, h in expected.checksums.items()
                                               if a in ("md5", "sha256"))


def _placed(env: Path, task: DataTask, why: str, error: HarnessError | None = None) -> TaskResult:
    """A task whose data the organizer places: done when its folder has the marker, else to do."""
    if layout.regular_file(layout.task_dir(env, task.name) / layout.MARKER):
        return TaskResult(task, Outcome.PLACED, f"its marker is there (placed by hand; {why})", error=error)
    return TaskResult(task, Outcome.PLACE_YOURSELF, why, error=error)


def _finish_task(plan: _Plan, spec: DataFetchSpec, events: FetchEvents) -> TaskResult:
    task = plan.task
    common = dict(record=plan.record, downloaded_files=len(plan.downloaded) - plan.borrowed,
                  downloaded_bytes=plan.received,
                  reused_files=len(plan.have) - len(plan.downloaded))
    if plan.errors:
        first = plan.errors[0]
        more = f" (and {len(plan.errors) - 1} more file(s) failed)" if len(plan.errors) > 1 else ""
        result = TaskResult(task, Outcome.FAILED, first.summary + more, error=first, **common)
    else:
        try:
            changed, _ = _finish(plan, spec)
        except HarnessError as exc:
            result = TaskResult(task, Outcome.FAILED, exc.summary, error=exc, **common)
        else:
            outcome = Outcome.FETCHED if changed else Outcome.UP_TO_DATE
            detail = (f"{len(plan.downloaded) - plan.borrowed} file(s) downloaded, "
                      + (f"{plan.borrowed} linked from a task sharing the record, " if plan.borrowed else "")
                      + f"{common['reused_files']} already there" if changed else "complete and unchanged")
            result = TaskResult(task, outcome, detail, **common)
    events.task_finished(result)
    return result


__all__ = ["DEFAULT_JOBS", "FetchEvents", "FetchReport", "DataFetchSpec", "NoFetchEvents", "Outcome", "TaskResult", "fetch"]
