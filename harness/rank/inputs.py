"""What the leaderboard ranks: verified results, unsigned ones admitted for a local look, and
published reference rows; and what it refuses, with the reason.

Verification comes first and is not optional: every `RESULTS/<sha256>/result.json` whose
`result.dsse.json` verifies against the organizer's public key (`harness.attest`) is ranked
from the *signed* payload, never from the file beside it. A result without an envelope, or whose
envelope does not verify, is listed as rejected with the verifier's reason and never ranked.
`--allow-unsigned` admits unsigned results for local use; their rows say so. A tampered result is
rejected even then: a failed signature is evidence, not an absence of it.

Reference rows come from a CSV (`name, track, published, <task>...`): the organizers' published
table (`harness/tasks/published/`) or anyone's. They are ranked by the same formula and marked
"reference, unverified".
"""

from __future__ import annotations

import csv
import dataclasses
import decimal
import enum
import functools
import io
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from harness import schemas
from harness.attest import ENVELOPE_NAME, RESULT_NAME
from harness.errors import UsageError
from harness.rank.model import Cell, CellState, Entry, Provenance, Track
from harness.results import ScoreResult, TaskOutcome
from harness.safeio import UnsafeOutput, read_capped
from harness.tasks.registry import Registry

#: the organizers' published tables, by name (`--reference icme2025-final`)
PUBLISHED_DIR = Path(__file__).resolve().parent.parent / "tasks" / "published"
#: a result is tens of kB; anything far larger is not one
RESULT_CAP = 16 * 1024 * 1024
REFERENCE_CAP = 4 * 1024 * 1024
#: names come from submissions: shown at most this long, control characters removed
NAME_CAP = 120
REFERENCE_COLUMNS = ("name", "track", "published")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class RejectProblem(str, enum.Enum):
    """Why a result is not ranked."""

    UNSIGNED = "unsigned"  # no result.dsse.json, and --allow-unsigned not given
    SIGNATURE = "signature"  # the envelope did not verify (detail: the verifier's problem id)
    UNREADABLE = "unreadable"  # result.json unreadable, not JSON, oversize, a link
    SCHEMA = "schema"  # does not follow result.schema.json
    DIRECTORY_MISMATCH = "directory_mismatch"  # RESULTS/<sha> names another submission than the result
    DUPLICATE = "duplicate"  # the same submission given twice
    INVALID_TASKS = "invalid_tasks"  # a task listed twice, or a scored value that is not a finite number


@dataclasses.dataclass(frozen=True)
class Rejected:
    """A result that is listed, never ranked."""

    source: str
    problem: RejectProblem
    message: str
    detail: str | None = None  # the verifier's VerifyProblem id for SIGNATURE
    sha256: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "problem", RejectProblem(self.problem))
        if not self.message:
            raise UsageError("a rejection needs a reason", expected="a message", found="empty", fix="harness bug")

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "problem": self.problem.value, "detail": self.detail,
                "sha256": self.sha256, "message": self.message}


@dataclasses.dataclass(frozen=True)
class LoadedResult:
    """A result admitted to the ranking, with what vouches for it."""

    directory: Path
    sha256: str
    name: str
    result: Mapping[str, Any]
    provenance: Provenance
    envelope: Path | None = None
    key_id: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "provenance", Provenance(self.provenance))
        if self.provenance is Provenance.REFERENCE:
            raise UsageError("a result is not a reference row", expected="verified or unsigned",
                             found="reference", fix="harness bug")
        if self.provenance is Provenance.VERIFIED and (self.envelope is None or not self.key_id):
            raise UsageError(f"result {self.sha256}: verified without an envelope", expected="envelope and key id",
                             found=f"envelope={self.envelope}, key_id={self.key_id}", fix="harness bug")
        if not _SHA256.match(self.sha256):
            raise UsageError("a result's submission digest is malformed", expected="64 lowercase hex digits",
                             found=repr(self.sha256)[:80], fix="harness bug")

    @functools.cached_property
    def typed(self) -> ScoreResult:
        """The payload read back through its type (it was schema-checked when admitted)."""
        return ScoreResult.from_dict(self.result)

    @property
    def lock_sha256(self) -> str | None:
        value = self.result["submission"].get("lock_sha256")
        return value if isinstance(value, str) else None

    @property
    def link(self) -> str:
        """Where the site keeps its copy, relative to the site's root: the envelope when signed."""
        return f"results/{self.sha256}/{ENVELOPE_NAME if self.envelope else RESULT_NAME}"


@dataclasses.dataclass(frozen=True)
class Inputs:
    results: tuple[LoadedResult, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    warnings: tuple[str, ...] = ()


def clean_name(text: str) -> str:
    """A display name from untrusted text: control and bidi-override characters removed, capped."""
    text = _CONTROL.sub("", str(text)).strip()
    return text if len(text) <= NAME_CAP else text[:NAME_CAP - 1] + "\u2026"


def display_name(result: Mapping[str, Any], sha256: str) -> str:
    """`result["name"]` when present, else `<encoder class> (<sha256[:8]>)`."""
    name = result.get("name")
    if isinstance(name, str) and clean_name(name):
        return clean_name(name)
    return f"{clean_name(result['submission'].get('encoder_class') or 'encoder')} ({sha256[:8]})"


def result_dirs(roots: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Every `<sha256>/` folder holding a result.json or result.dsse.json under each RESULTS root (or
    the root itself when it is one), in a stable order; and a warning for each root holding none.

    Raises:
        UsageError: a root that does not exist or is not a folder.
    """
    found: list[Path] = []
    warnings: list[str] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise UsageError(f"results folder {root} does not exist", expected="a RESULTS folder holding "
                             "<sha256>/result.json (what `aecc score --out` writes)",
                             found="no such folder" if not root.exists() else "not a folder",
                             fix="check the path")
        if (root / RESULT_NAME).is_file() or (root / ENVELOPE_NAME).is_file():
            candidates = [root]
        else:
            candidates = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.is_symlink()
                          and ((d / RESULT_NAME).exists() or (d / ENVELOPE_NAME).exists())]
        if not candidates:
            warnings.append(f"{root}: no <sha256>/{RESULT_NAME} in it")
        found.extend(candidates)
    return found, warnings


def _read_unsigned(directory: Path) -> Any:
    return json.loads(read_capped(directory / RESULT_NAME, RESULT_CAP))


def _check_tasks(result: Mapping[str, Any]) -> str | None:
    seen: set[str] = set()
    for task in result["tasks"]:
        if task["task"] in seen:
            return f"task {task['task']!r} is listed twice"
        seen.add(task["task"])
        for key in ("track_a", "track_b"):
            value = task.get(key)
            if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
                return f"task {task['task']!r}: {key} is {value!r}, not a finite number"
        detail = task.get("track_a_detail") or {}
        values = detail.get("values") or []
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
            return f"task {task['task']!r}: track_a_detail.values holds something that is not a finite number"
    return None


def load_results(roots: Sequence[Path], *, public_key: Path | None = None,
                 allow_unsigned: bool = False) -> Inputs:
    """Read, verify and check every result under `roots`.

    A result is admitted when its envelope verifies against `public_key` (VERIFIED), or, with
    `allow_unsigned`, when it is unsigned or no key was given (UNSIGNED). Everything else is rejected
    with its reason. Admitted results are ranked from the verified payload.

    Raises:
        UsageError: a root that does not exist; results but neither a key nor --allow-unsigned; a bad key.
    """
    from harness import attest

    directories, warnings = result_dirs(roots)
    if directories and public_key is None and not allow_unsigned:
        raise UsageError(
            "results cannot be ranked without verifying them",
            expected="--pubkey PEM (the organizer's signing.pub), or --allow-unsigned for a local look",
            found=f"{len(directories)} result folder(s) and no public key",
            fix="pass --pubkey signing.pub (`aecc keys init` wrote it next to the signing key)",
        )
    key = attest.load_public_key(Path(public_key)) if public_key is not None else None
    admitted: list[LoadedResult] = []
    rejected: list[Rejected] = []
    seen: dict[str, Path] = {}
    for directory in directories:
        envelope = directory / ENVELOPE_NAME
        signed = envelope.exists() or envelope.is_symlink()
        key_id = None
        note = ""
        if signed and key is not None:
            outcome = attest.verify_envelope(envelope, key)
            if not outcome.ok:
                rejected.append(Rejected(str(envelope), RejectProblem.SIGNATURE, outcome.message,
                                         detail=outcome.problem.value, sha256=_dir_sha(directory)))
                continue
            result, provenance, key_id = outcome.result, Provenance.VERIFIED, outcome.key_id
        elif not allow_unsigned:
            rejected.append(Rejected(str(directory / RESULT_NAME), RejectProblem.UNSIGNED,
                                     f"no {ENVELOPE_NAME} beside {RESULT_NAME}: an unsigned result is never ranked",
                                     sha256=_dir_sha(directory)))
            continue
        else:
            provenance = Provenance.UNSIGNED
            note = ("signed, but not verified: no --pubkey given" if signed
                    else "unsigned, admitted with --allow-unsigned")
            try:
                result = _read_unsigned(directory)
            except FileNotFoundError:
                rejected.append(Rejected(str(directory / RESULT_NAME), RejectProblem.UNREADABLE,
                                         f"no {RESULT_NAME} (only an envelope, and no --pubkey to read it with)",
                                         sha256=_dir_sha(directory)))
                continue
            except (OSError, ValueError, UnsafeOutput) as exc:  # UnsafeOutput: a link, a FIFO, oversize
                summary = exc.summary if isinstance(exc, UnsafeOutput) else str(exc)
                rejected.append(Rejected(str(directory / RESULT_NAME), RejectProblem.UNREADABLE,
                                         f"{RESULT_NAME} cannot be read: {summary[:300]}", sha256=_dir_sha(directory)))
                continue
            found = schemas.problems("result", result)
            if found:
                rejected.append(Rejected(str(directory / RESULT_NAME), RejectProblem.SCHEMA,
                                         "does not follow result.schema.json: " + "; ".join(found),
                                         sha256=_dir_sha(directory)))
                continue
        sha = result["submission"]["sha256"]
        if directory.name != sha and _SHA256.match(directory.name):
            rejected.append(Rejected(str(directory), RejectProblem.DIRECTORY_MISMATCH,
                                     f"the folder is named for submission {directory.name} but its result is for {sha}",
                                     sha256=sha))
            continue
        problem = _check_tasks(result)
        if problem:
            rejected.append(Rejected(str(directory), RejectProblem.INVALID_TASKS, problem, sha256=sha))
            continue
        if sha in seen:
            rejected.append(Rejected(str(directory), RejectProblem.DUPLICATE,
                                     f"submission {sha} is already ranked from {seen[sha]}", sha256=sha))
            continue
        seen[sha] = directory
        admitted.append(LoadedResult(directory=directory, sha256=sha, name=display_name(result, sha), result=result,
                                     provenance=provenance, envelope=envelope if signed else None,
                                     key_id=key_id, note=note))
    return Inputs(results=tuple(_unique_names(admitted)), rejected=tuple(rejected), warnings=tuple(warnings))


def _dir_sha(directory: Path) -> str | None:
    return directory.name if _SHA256.match(directory.name) else None


def _unique_names(results: list[LoadedResult]) -> list[LoadedResult]:
    """Two rows must not look alike: a repeated display name gets the submission's short digest."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.name] = counts.get(r.name, 0) + 1
    return [dataclasses.replace(r, name=f"{r.name} ({r.sha256[:8]})") if counts[r.name] > 1
            and not r.name.endswith(f"({r.sha256[:8]})") else r for r in results]


def result_entries(loaded: LoadedResult, registry: Registry,
                   refused: Mapping[str, str] | None = None) -> tuple[list[Entry], list[str]]:
    """A result's two rows (Track A, Track B), and a warning for each task the ranking ignores: one
    that is in neither `registry` nor its custom tasks (`refused` gives the reason, harness.tasks.custom)."""
    cells: dict[Track, dict[str, Cell]] = {Track.A: {}, Track.B: {}}
    warnings: list[str] = []
    for task in loaded.typed.tasks:
        name = task.task
        if name not in registry:
            reason = (refused or {}).get(name, "not a registry task (no bounds, no weight)")
            warnings.append(f"{loaded.name}: task {name!r}: not ranked: {reason}")
            continue
        outcome = task.outcome
        reason = task.reason or ""
        overridden = task.xares_disabled_overridden is True
        for track, value in ((Track.A, task.track_a), (Track.B, task.track_b)):
            if outcome is TaskOutcome.SCORED and value is not None:
                values: tuple[float, ...] = ()
                if track is Track.A and task.track_a_detail is not None:
                    values = tuple(task.track_a_detail.values)
                cells[track][name] = Cell(name, CellState.VALUE, raw=float(value), values=values,
                                          xares_disabled_overridden=overridden)
            elif outcome is TaskOutcome.SCORED:
                cells[track][name] = Cell(name, CellState.NOT_RUN, reason=f"no Track {track.value} value")
            elif outcome is TaskOutcome.FAILED:
                cells[track][name] = Cell(name, CellState.FAILED, reason=reason or "failed")
            elif outcome is TaskOutcome.ERROR:
                cells[track][name] = Cell(name, CellState.ERROR, reason=reason or "infrastructure error")
            else:
                cells[track][name] = Cell(name, CellState.NOT_RUN, reason=reason or outcome)
    versions = {k: loaded.typed.versions.get(k) for k in ("harness", "harness_commit", "xares")}
    entries = [Entry(track=track, name=loaded.name, provenance=loaded.provenance, cells=cells[track],
                     sha256=loaded.sha256, lock_sha256=loaded.lock_sha256, link=loaded.link, versions=versions,
                     key_id=loaded.key_id, source=str(loaded.directory)) for track in Track]
    return entries, warnings


# ------------------------------------------------------------------------------------------ references


def resolve_reference(spec: str | Path) -> Path:
    """A reference CSV path, or the name of a published table in harness/tasks/published/."""
    path = Path(spec)
    if path.is_file():
        return path
    named = PUBLISHED_DIR / f"{spec}.csv"
    if not path.suffix and named.is_file():
        return named
    available = sorted(p.stem for p in PUBLISHED_DIR.glob("*.csv")) if PUBLISHED_DIR.is_dir() else []
    raise UsageError(f"reference {spec} not found", expected="a CSV file (name, track, published, <task>...) or "
                     "the name of a published table: " + (", ".join(available) or "none"),
                     found="no such file", fix="check the path")


def load_reference(spec: str | Path, registry: Registry) -> list[Entry]:
    """Reference rows from a CSV: columns `name`, `track` (A or B), `published` (may be empty), then one
    per registry task name with raw metric values (empty: not run; `failed`: failed). Lines starting
    with `#` are comments.

    Raises:
        UsageError: a missing column, an unknown task name (with a suggestion), a bad value (with its line).
    """
    path = resolve_reference(spec)
    raw = path.read_bytes()
    if len(raw) > REFERENCE_CAP:
        raise UsageError(f"reference {path} is too large", expected=f"under {REFERENCE_CAP} bytes",
                         found=f"{len(raw)} bytes", fix="pass one leaderboard table")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"reference {path} is not UTF-8 text", expected="a UTF-8 CSV", found="undecodable bytes",
                         fix="save it as UTF-8") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    if not lines:
        raise UsageError(f"reference {path} is empty", expected="a header and rows", found="nothing",
                         fix="pass the published table")
    reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)))
    header = [h.strip() for h in next(reader)]
    missing = [c for c in REFERENCE_COLUMNS if c not in header]
    if missing:
        raise UsageError(f"reference {path}: missing column(s) {', '.join(missing)}",
                         expected="columns name, track, published, then one per registry task",
                         found=", ".join(header)[:300], fix="add the columns (published may be empty)")
    tasks = [h for h in header if h not in REFERENCE_COLUMNS]
    for task in tasks:
        registry.get(task)  # UsageError with "Did you mean"
    if len(set(header)) != len(header):
        raise UsageError(f"reference {path}: a column appears twice", expected="each column once",
                         found=", ".join(header)[:300], fix="merge the columns")
    entries: list[Entry] = []
    seen: set[tuple[str, str]] = set()
    for (line_no, _), row in zip(lines[1:], reader):
        where = f"{path}:{line_no}"
        if len(row) != len(header):
            raise UsageError(f"{where}: {len(row)} fields", expected=f"{len(header)} fields, as the header",
                             found=str(len(row)), fix="fix the row")
        record = dict(zip(header, (c.strip() for c in row)))
        name, track = clean_name(record["name"]), record["track"].upper()
        if not name:
            raise UsageError(f"{where}: no name", expected="a row name", found="empty", fix="name the row")
        if track not in ("A", "B"):
            raise UsageError(f"{where}: track {record['track']!r}", expected="A or B", found=repr(record["track"]),
                             fix="write A or B")
        if (name, track) in seen:
            raise UsageError(f"{where}: {name} appears twice in Track {track}", expected="one row per name and track",
                             found="a repeated row", fix="remove one")
        seen.add((name, track))
        published = record["published"] or None
        if published is not None:
            try:
                if not decimal.Decimal(published).is_finite():
                    raise decimal.InvalidOperation
            except decimal.InvalidOperation:
                raise UsageError(f"{where}: published {published!r}", expected="a decimal number or empty",
                                 found=repr(published), fix="write the average as published") from None
        cells = {}
        for task in tasks:
            cells[task] = _reference_cell(task, record[task], where)
        entries.append(Entry(track=track, name=name, provenance=Provenance.REFERENCE, cells=cells,
                             published=published, source=where))
    return entries


def _reference_cell(task: str, text: str, where: str) -> Cell:
    if text == "":
        return Cell(task, CellState.NOT_RUN, reason="empty in the reference")
    if text.lower() == "failed":
        return Cell(task, CellState.FAILED, reason="failed in the reference")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"{where}: {task} = {text!r}", expected="a finite number, 'failed', or empty (not run)",
                         found=repr(text)[:80], fix="fix the value")
    return Cell(task, CellState.VALUE, raw=value)


def iter_reference_entries(specs: Iterable[str | Path], registry: Registry) -> list[Entry]:
    out: list[Entry] = []
    for spec in specs:
        out.extend(load_reference(spec, registry))
    return out
