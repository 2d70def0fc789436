"""The journal: what happened to every submission and stage of a RESULTS folder, durable through a
SIGKILL at any moment, shared by every process that works on the folder (local runs, Slurm jobs).

An fsync'd append-only event log rather than a database, because RESULTS may live on a cluster's
shared file system, where SQLite's WAL mode (shared memory, byte-range locks) is not safe. Each
writer appends to a file of its own (`journal/events-<host>-<pid>-<id>.jsonl`), one JSON event per
line, fsync'd before the call returns; no two processes ever write to one file. A reader merges
all files and reduces the events to a state. A line torn by a kill (the last one of a file, without
its newline) is ignored, and the killed writer's file is never appended to again: its successor
opens a new one.

Events are keyed by what determines a stage's result (submission sha256, task, stage, and a key
over the harness version, X-ARES version, runtime image and settings), so a rerun skips exactly the
stages whose key is done, and an upgrade shows up as a key that differs, on purpose.

Submissions are claimed with leases (`journal/leases/<sha256>.json`, created with O_EXCL, renewed by
a heartbeat, taken over only once expired), so two processes on one RESULTS cooperate: each takes
submissions the other does not hold, and a job that died or was requeued gives its work back when
its lease expires. Completion is idempotent: results are written by rename, and a stage done twice
reduces to its first completion.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import enum
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping

from harness.processes import process_start
from harness.safeio import write_atomic
from harness.stage_names import Stage

JOURNAL_DIR = "journal"
LEASES_DIR = "leases"


class EventKind(str, enum.Enum):
    RUN = "run"  # a process started or ended working on the folder
    ARRIVAL = "arrival"  # a ZIP (file, folder or mail attachment) that became a submission
    UNUSABLE = "unusable"  # a mail without a usable ZIP
    SUBMISSION = "submission"  # a submission's overall state changed
    STAGE = "stage"  # a stage of a submission (per task where it has tasks) started or ended
    SCHEDULER = "scheduler"  # a backend's job id and state for a submission (Slurm)
    REPLY = "reply"  # an answer to a mail: recorded, sent, skipped or failed (harness.mailbox.replies)
    WATCH = "watch"  # `aecc watch` started, took a pass over its sources, or stopped (harness.mail.watch)


class StageState(str, enum.Enum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # the submission's fault: recorded, not retried
    ERROR = "error"  # infrastructure: retried, never recorded as the submission's failure


class SubmissionState(str, enum.Enum):
    QUEUED = "queued"
    BUILDING = "building"
    FETCHING = "fetching"
    CHECKING = "checking"
    PREPARING = "preparing"
    ENCODING = "encoding"
    SCORING = "scoring"
    DONE = "done"  # scored (every task, or some failed for the submission: see the result)
    EXCLUDED = "excluded"  # refused before scoring: intake, build, or a blocking check failed
    ERROR = "error"  # infrastructure failures outlasted the retries: to be run again, never ranked
    SUPERSEDED = "superseded"  # a later ZIP from the same sender replaced it (--latest-per-sender)

    @property
    def final(self) -> bool:
        return self in (SubmissionState.DONE, SubmissionState.EXCLUDED, SubmissionState.SUPERSEDED)


@dataclasses.dataclass(frozen=True)
class Event:
    kind: EventKind
    ts: str
    writer: str
    sha256: str | None = None
    stage: str | None = None
    task: str | None = None
    key: str | None = None
    state: str | None = None
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind.value, "ts": self.ts, "writer": self.writer, "sha256": self.sha256,
                           "stage": self.stage, "task": self.task, "key": self.key, "state": self.state,
                           "data": dict(self.data)}, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> "Event":
        raw = json.loads(line)
        return cls(EventKind(raw["kind"]), raw["ts"], raw["writer"], raw.get("sha256"), raw.get("stage"),
                   raw.get("task"), raw.get("key"), raw.get("state"), raw.get("data") or {})


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Writer:
    """Appends events to a file of its own; each append is on disk (fsync) before it returns."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = directory / f"events-{self.id}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._lock = threading.Lock()  # worker threads share one writer

    def append(self, kind: EventKind, **fields: Any) -> Event:
        event = Event(kind, now_iso(), self.id, **fields)
        data = (event.to_json() + "\n").encode()
        with self._lock:
            os.write(self._fd, data)
            os.fsync(self._fd)
        return event

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def read_events(results: Path) -> list[Event]:
    """Every complete event of every writer, in time order (writers' clocks are the hosts')."""
    events = []
    for path in sorted((results / JOURNAL_DIR).glob("events-*.jsonl")):
        with open(path, "rb") as fh:
            data = fh.read()
        lines = data.split(b"\n")
        # The last element is b"" after a final newline, or a torn line a kill left: never an event.
        for line in lines[:-1]:
            try:
                events.append(Event.from_json(line.decode()))
            except (ValueError, KeyError, UnicodeDecodeError):
                continue  # a line from a newer harness or a damaged disk: not ours to guess at
    events.sort(key=lambda e: e.ts)
    return events


@dataclasses.dataclass
class StageRecord:
    stage: str
    task: str | None
    key: str | None
    state: StageState
    ts: str
    data: dict
    attempts: int = 1


@dataclasses.dataclass
class SubmissionRecord:
    sha256: str
    state: SubmissionState = SubmissionState.QUEUED
    state_ts: str = ""
    detail: dict = dataclasses.field(default_factory=dict)
    arrivals: list[dict] = dataclasses.field(default_factory=list)
    stages: dict[tuple[str, str | None], StageRecord] = dataclasses.field(default_factory=dict)
    scheduler: dict = dataclasses.field(default_factory=dict)

    def done(self, stage: str, task: str | None = None, key: str | None = None) -> StageRecord | None:
        """The stage's completion under `key` (any key when None), or None."""
        record = self.stages.get((stage, task))
        if record is None or record.state is not StageState.DONE or (key is not None and record.key != key):
            return None
        return record


@dataclasses.dataclass
class JournalState:
    submissions: dict[str, SubmissionRecord]
    unusable: list[dict]
    runs: list[dict]


def reduce(events: list[Event]) -> JournalState:
    """The state the events describe. A stage's record is its latest event, except that a completion
    (`done`) under a key is kept against a later `running` or `error` under the same key only until
    that newer attempt itself completes: so a crash mid-rerun never loses an earlier completion."""
    subs: dict[str, SubmissionRecord] = {}
    unusable: dict[str, dict] = {}
    runs: list[dict] = []

    def sub(sha: str) -> SubmissionRecord:
        return subs.setdefault(sha, SubmissionRecord(sha))

    for e in events:
        if e.kind is EventKind.RUN:
            runs.append({"ts": e.ts, "writer": e.writer, "state": e.state, **e.data})
        elif e.kind is EventKind.UNUSABLE:
            unusable[e.data.get("source", e.ts)] = dict(e.data)
        elif e.kind is EventKind.ARRIVAL and e.sha256:
            record = sub(e.sha256)
            if not any(a.get("source") == e.data.get("source") for a in record.arrivals):
                record.arrivals.append(dict(e.data))
        elif e.kind is EventKind.SUBMISSION and e.sha256:
            record = sub(e.sha256)
            record.state, record.state_ts, record.detail = SubmissionState(e.state), e.ts, dict(e.data)
        elif e.kind is EventKind.SCHEDULER and e.sha256:
            sub(e.sha256).scheduler.update(e.data)
        elif e.kind is EventKind.STAGE and e.sha256 and e.stage:
            record = sub(e.sha256)
            slot = (e.stage, e.task)
            state = StageState(e.state)
            previous = record.stages.get(slot)
            attempts = (previous.attempts + (state is StageState.RUNNING)) if previous else 1
            if (previous is not None and previous.state is StageState.DONE and previous.key == e.key
                    and state in (StageState.RUNNING, StageState.ERROR)):
                previous.attempts = attempts
                continue
            record.stages[slot] = StageRecord(e.stage, e.task, e.key, state, e.ts, dict(e.data), attempts)
    return JournalState(subs, list(unusable.values()), runs)


class Journal:
    """The journal of one RESULTS folder, as a writing process sees it."""

    def __init__(self, results: Path):
        self.results = Path(results)
        self.dir = self.results / JOURNAL_DIR
        self.writer = Writer(self.dir)

    def append(self, kind: EventKind, **fields: Any) -> Event:
        return self.writer.append(kind, **fields)

    def stage(self, sha256: str, stage: Stage, state: StageState, *, task: str | None = None, key: str | None = None,
              **data: Any) -> Event:
        """Record a stage's state change. `Stage(stage)` refuses a name that is not a stage."""
        return self.append(EventKind.STAGE, sha256=sha256, stage=Stage(stage).value, task=task, key=key,
                           state=StageState(state).value, data=data)

    def submission(self, sha256: str, state: SubmissionState, **data: Any) -> Event:
        return self.append(EventKind.SUBMISSION, sha256=sha256, state=state.value, data=data)

    def state(self) -> JournalState:
        return reduce(read_events(self.results))

    def close(self) -> None:
        self.writer.close()


# --- leases ------------------------------------------------------------------------------------------


class Leases:
    """Claims on submissions, so that processes sharing a RESULTS folder never work on one at once.

    A lease is a file created with O_EXCL; its owner renews it (rewrite and rename) every
    `ttl_s / 3`, and never re-creates one it lost; anyone may take it over once it has expired:
    take-overs re-read the expiry under a lock, remove the file, and create it afresh with O_EXCL,
    so one process wins. A holder that was only slow (not dead) may have worked on alongside the
    new one: completion is idempotent, so the journal stays consistent either way."""

    def __init__(self, results: Path, owner: str, ttl_s: float = 120.0):
        self.dir = Path(results) / JOURNAL_DIR / LEASES_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.owner = owner
        self.ttl_s = ttl_s
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def path(self, sha256: str) -> Path:
        return self.dir / f"{sha256}.json"

    def _content(self) -> bytes:
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "started": process_start(os.getpid()), "expires": time.time() + self.ttl_s}).encode()

    def holder(self, sha256: str) -> dict | None:
        try:
            data = json.loads(self.path(sha256).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def acquire(self, sha256: str) -> bool:
        """True when this process now holds the lease (it may already have)."""
        with self._lock:
            if sha256 in self._held:
                return True
        path = self.path(sha256)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if not self._expired(path):
                    current = self.holder(sha256) or {}
                    return current.get("owner") == self.owner
                # Its holder died or was requeued. Take-overs are serialised, and the expiry is read
                # again under the lock: a lease renewed meanwhile is left alone. Whoever then
                # creates the file (O_EXCL) holds it, here or a plain acquire elsewhere.
                with open(self.dir / ".takeover.lock", "w") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    if self._expired(path):
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()
                continue
            try:
                os.write(fd, self._content())
                os.fsync(fd)
            finally:
                os.close(fd)
            with self._lock:
                self._held.add(sha256)
            return True
        return False

    def _expired(self, path: Path) -> bool:
        try:
            data = json.loads(path.read_text())
            if data.get("host") == socket.gethostname() and data.get("owner") != self.owner \
                    and process_start(int(data.get("pid", 0))) != data.get("started"):
                return True  # its holder on this host is gone (killed): no need to wait out the expiry
            return float(data["expires"]) <= time.time()
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError):
            # Created but not yet written (or torn by a kill right then): expired once it is old.
            try:
                return path.stat().st_mtime + self.ttl_s <= time.time()
            except FileNotFoundError:
                return False

    def renew(self) -> None:
        with self._lock:
            held = list(self._held)
        for sha in held:
            current = self.holder(sha)
            if current is None or current.get("owner") != self.owner:
                # Taken over after it expired (or removed): no longer ours, and never re-created.
                with self._lock:
                    self._held.discard(sha)
                continue
            write_atomic(self.path(sha), self._content())

    def release(self, sha256: str) -> None:
        with self._lock:
            self._held.discard(sha256)
        current = self.holder(sha256)
        if current is not None and current.get("owner") == self.owner:
            with contextlib.suppress(FileNotFoundError):
                self.path(sha256).unlink()

    def held(self) -> set[str]:
        with self._lock:
            return set(self._held)

    def start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.ttl_s / 3):
                self.renew()

        self._thread = threading.Thread(target=beat, daemon=True, name="lease-heartbeat")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sha in list(self.held()):
            self.release(sha)


def iter_results(results: Path) -> Iterator[Path]:
    """Every `RESULTS/<sha256>/result.json`."""
    for path in sorted(Path(results).glob("*/result.json")):
        if len(path.parent.name) == 64:
            yield path
