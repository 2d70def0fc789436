"""Intake: a participant's ZIP (or folder) becomes an immutable, content-addressed submission.

Policy (docs/DESIGN.md "intake", docs/THREAT_MODEL.md):

* **Refuse, never sanitise.** Every entry name and header is checked before one byte is extracted.
  All problems are collected; the error carries the first one's `RejectReason` (stable string id) and
  the offending entry, and lists the first few. Names are shown escaped (`escape_name`), so ANSI, RTL
  and other control characters never reach a terminal raw.
* **Names** must be relative POSIX paths: no leading `/`, drive letter, backslash, NUL, control or
  bidi-override character, `..`, empty or `.` component; bounded length and depth. Two names that are
  equal after Unicode NFC + casefold collide (exact duplicates, `Model.py`/`model.py`, NFC/NFD), and so
  does a name used both as a file and as a directory.
* **Entries**: symlinks, devices, FIFOs and sockets (Unix mode in `external_attr >> 16`), encrypted
  entries, compression methods other than stored/deflate/bzip2/lzma, and entries whose local header +
  data overlap another entry or the central directory are refused.
* **Bombs**: entry count, per-entry and total uncompressed bytes, and compression ratio (per entry for
  entries of at least `ratio_floor_bytes`, and over the whole archive) are checked from the central
  directory, then again while extracting by counting the bytes actually written: declared sizes lie.
* **Extraction** is our own loop into a fresh directory: `mkdir` for directories, `os.open` with
  `O_EXCL|O_NOFOLLOW` for files, never `extractall`. Any violation deletes the partial tree.
  Nested archives are ordinary files and are never opened.
* **Junk**: entries under a top-level `__MACOSX/` (Finder's resource forks) are validated like any
  other entry, then dropped and counted in `ignored_entries`. `.DS_Store` files are kept as ordinary
  files: they are harmless and dropping them would be silent sanitising.
* **Shape**: if the extracted tree holds exactly one top-level directory and nothing else (GitHub's
  "Download ZIP", Finder's "Compress"), that directory is the submission root.
* **Store**: `store/<sha256>/` holds `submission.zip` (the archive bytes, hashed as copied, so what is
  validated is what is named), `files/` (read-only: files 0444, directories 0555) and `intake.json`,
  the completion marker. The entry is built in `store/.intake-<pid>` and renamed into place in one
  step, under an exclusive `flock` on the store directory; leftovers from a crash are removed first,
  and an entry without its marker is rebuilt. Intake of a stored sha only re-reads it.
* **Folders** are copied with the same rules (no symlinks or special files). Their sha256 is over the
  serialisation `b"aecc-folder-v1\\n"` then, for every entry sorted by UTF-8 path,
  `b"d <path>\\n"` for a directory or `b"f <644|755> <size> <path>\\n" + content` for a file (only the
  owner-execute bit is kept: the rest of a mode depends on the umask of whoever copied the folder).
  No `submission.zip` is written for a folder.
* **Encoder discovery never imports submission code**: `--encoder file.py:Class` wins, then the
  manifest `aecc.json` (`{"encoder": "file.py:Class"}`, no other key), else the X-ARES rule applied
  statically with `ast`: the module-level names ending in `Encoder` (classes, defs, assignments and
  names bound by import, since X-ARES looks at `dir(module)`) of the top-level `.py` files whose name
  is importable, ignoring the template's `audio_encoder_checker.py`; an import of a candidate defined
  in another top-level file is not counted twice. Exactly one candidate is chosen.
* **requirements.txt** (UTF-8, optional) may hold only blank lines, comments, PEP 508 requirements
  (name, extras, version specifiers, environment markers) and per-requirement `--hash=alg:hex`
  options. Refused: every other option (index options `-i --index-url --extra-index-url --no-index
  -f --find-links --trusted-host`, `-e/--editable`, `-r/-c` includes, ...), direct URLs and VCS
  references (`git+...`, `http(s)://`, `file:`, `pkg @ url`) and local paths or archive files.
  An exact `torch==X` becomes `torch_pin`, which the build stage uses.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.stages.contents import (  # noqa: F401  (re-exported: the intake API includes them)
    CHECKER_NAME,
    REQUIREMENTS_NAME,
    EncoderRef,
    EncoderSource,
    Requirements,
    discover_encoder,
    load_requirements,
    parse_requirements,
    parse_spec,
)
from harness.stages.rejection import (  # noqa: F401  (re-exported)
    MANIFEST_NAME,
    IntakeRejected,
    Problem,
    RejectReason,
    escape_name,
    reject,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
MARKER_NAME = "intake.json"
ARCHIVE_NAME = "submission.zip"
FILES_NAME = "files"
_TMP_PREFIX = ".intake-"
_JUNK_DIR = "__MACOSX"
_MARKER_FORMAT = 1
_CHUNK = MiB
_NAME_MAX = 255  # bytes per component on ext4/xfs/apfs
_UNIX_SYSTEMS = (3, 19)  # Unix, OS X: both store st_mode in external_attr >> 16
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DRIVE = re.compile(r"^[A-Za-z]:")
_ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError,
                    NotImplementedError, RuntimeError, ValueError, struct.error)


class SourceKind(str, enum.Enum):
    ZIP = "zip"
    FOLDER = "folder"


_R = RejectReason


@dataclass(frozen=True)
class IntakeLimits:
    """Caps applied to every archive or folder; the ratio ones only to archives."""

    max_entries: int = 10_000
    max_total_bytes: int = 4 * GiB
    max_entry_bytes: int = 4 * GiB
    max_ratio: float = 100.0
    ratio_floor_bytes: int = MiB  # small entries may compress well for honest reasons
    max_path_length: int = 512
    max_depth: int = 32

    def __post_init__(self) -> None:
        for name in ("max_entries", "max_total_bytes", "max_entry_bytes", "ratio_floor_bytes",
                     "max_path_length", "max_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"IntakeLimits.{name} must be a positive integer", found=repr(value))
        if isinstance(self.max_ratio, bool) or not isinstance(self.max_ratio, (int, float)) \
                or not self.max_ratio >= 1:
            raise UsageError("IntakeLimits.max_ratio must be a number >= 1", found=repr(self.max_ratio))


@dataclass(frozen=True)
class Submission:
    sha256: str
    source_kind: SourceKind
    store_dir: Path
    root: Path  # the submission root: store_dir/files, or its single top-level folder
    archive: Path | None  # None for a folder
    encoder: EncoderRef
    requirements: Requirements
    file_count: int
    total_bytes: int
    ignored_entries: int

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise TypeError(f"sha256 must be 64 lowercase hex digits, not {self.sha256!r}")
        if min(self.file_count, self.total_bytes, self.ignored_entries) < 0:
            raise TypeError("counts must be non-negative")

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "source_kind": self.source_kind.value,
                "store_dir": str(self.store_dir), "root": str(self.root),
                "archive": str(self.archive) if self.archive else None,
                "encoder": self.encoder.to_dict(), "requirements": self.requirements.to_dict(),
                "file_count": self.file_count, "total_bytes": self.total_bytes,
                "ignored_entries": self.ignored_entries}


# ---------------------------------------------------------------- names, shared by ZIP and folder

def name_problem(name: str, is_dir: bool, limits: IntakeLimits) -> Problem | None:
    def bad(reason: RejectReason, detail: str) -> Problem:
        return Problem(reason, name, detail)

    # NUL first: zipfile itself truncates names at NUL, hiding what the archive really says.
    if "\x00" in name:
        return bad(_R.NUL_BYTE, "name contains a NUL byte")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        return bad(_R.INVALID_NAME, "name is not valid UTF-8")
    if any(unicodedata.category(c) == "Cc" or c in _BIDI for c in name):
        return bad(_R.CONTROL_CHAR, "name contains a control or bidi-override character")
    if name.startswith("/"):
        return bad(_R.ABSOLUTE_PATH, "absolute path")
    if _DRIVE.match(name):
        return bad(_R.DRIVE_LETTER, "name starts with a drive letter")
    if "\\" in name:
        return bad(_R.BACKSLASH, "name contains a backslash")
    body = name[:-1] if is_dir and name.endswith("/") else name
    parts = body.split("/")
    if ".." in parts:
        return bad(_R.PARENT_TRAVERSAL, "name has a '..' component")
    if not body or any(p in ("", ".") for p in parts):
        return bad(_R.INVALID_NAME, "name has an empty or '.' component")
    if len(name) > limits.max_path_length or any(len(p.encode()) > _NAME_MAX for p in parts):
        return bad(_R.PATH_TOO_LONG, f"longer than {limits.max_path_length} characters "
                                     f"or a component over {_NAME_MAX} bytes")
    if len(parts) > limits.max_depth:
        return bad(_R.TOO_DEEP, f"{len(parts)} levels deep, limit {limits.max_depth}")
    return None


def _fold(path: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


def collisions(entries: Sequence[tuple[str, bool]]) -> list[Problem]:
    """Names as they would land on a case-insensitive or normalising filesystem must not meet."""
    seen: dict[str, tuple[str, bool]] = {}  # folded path -> (first spelling, is a directory)
    problems = []
    for name, is_dir in entries:
        parts = name.split("/")
        for i in range(1, len(parts) + 1):
            path, as_dir = "/".join(parts[:i]), is_dir or i < len(parts)
            key = _fold(path)
            prev = seen.get(key)
            if prev is None:
                seen[key] = (path, as_dir)
                continue
            if prev == (path, True) and as_dir:
                continue  # a directory is implied by every entry inside it
            if prev[0] != path:
                detail = f"collides with {escape_name(prev[0])} after Unicode NFC + case folding"
            elif prev[1] != as_dir:
                detail = f"{escape_name(path)} is used both as a file and as a directory"
            else:
                detail = "the same name appears twice"
            problems.append(Problem(_R.DUPLICATE_NAME, name, detail))
            break
    return problems


def _is_junk(name: str) -> bool:
    return name.split("/", 1)[0] == _JUNK_DIR


@dataclass(frozen=True)
class _Item:
    name: str  # validated, no trailing '/'
    is_dir: bool
    size: int
    info: zipfile.ZipInfo | None = None
    ident: tuple[int, int] | None = None  # (st_dev, st_ino) of a folder entry when scanned


def _limit_problems(items: Sequence[_Item], limits: IntakeLimits) -> list[Problem]:
    problems = [Problem(_R.TOO_LARGE, it.name, f"{it.size} bytes, limit {limits.max_entry_bytes}")
                for it in items if it.size > limits.max_entry_bytes]
    total = sum(it.size for it in items)
    if total > limits.max_total_bytes:
        problems.append(Problem(_R.TOO_LARGE, None, f"{total} bytes in all, limit {limits.max_total_bytes}"))
    return problems


def _keep(items: list[_Item]) -> tuple[list[_Item], int]:
    kept = [it for it in items if not _is_junk(it.name)]
    if not any(not it.is_dir for it in kept):
        raise reject(_R.EMPTY, None, "no files (directories and __MACOSX/ entries only, or nothing)")
    return kept, len(items) - len(kept)


# ---------------------------------------------------------------- ZIP

def open_zip(path: Path) -> zipfile.ZipFile:
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise reject(_R.EMPTY, None, "the file is 0 bytes")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        if head == b"PK\x03\x04" and "not a zip file" in str(exc):
            raise reject(_R.TRUNCATED, None, "starts like a ZIP but has no end-of-central-directory record") from None
        if head[:2] != b"PK":
            raise reject(_R.NOT_A_ZIP, None, f"the file starts with {head!r}, not a ZIP signature") from None
        raise reject(_R.CORRUPT, None, f"unreadable central directory: {exc}") from None
    except (OSError, EOFError, ValueError, struct.error, NotImplementedError) as exc:
        raise reject(_R.CORRUPT, None, f"unreadable central directory: {exc}") from None


def _entry_problem(info: zipfile.ZipInfo, is_dir: bool, limits: IntakeLimits) -> Problem | None:
    name = info.orig_filename
    if info.flag_bits & 0x1:
        return Problem(_R.ENCRYPTED, name, "entry is encrypted")
    if info.create_system in _UNIX_SYSTEMS:
        fmt = stat.S_IFMT(info.external_attr >> 16)
        if fmt == stat.S_IFLNK:
            return Problem(_R.SYMLINK, name, "entry is a symbolic link")
        if fmt in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
            return Problem(_R.SPECIAL_FILE, name, f"entry is a device, FIFO or socket (mode {fmt:#o})")
        if fmt == stat.S_IFDIR and not is_dir:
            return Problem(_R.CORRUPT, name, "mode says directory but the name has no trailing '/'")
    if info.compress_type not in _METHODS:
        return Problem(_R.UNSUPPORTED_COMPRESSION, name, f"compression method {info.compress_type}")
    if info.file_size > limits.max_entry_bytes:
        return Problem(_R.TOO_LARGE, name, f"declares {info.file_size} bytes, limit {limits.max_entry_bytes}")
    if info.file_size >= limits.ratio_floor_bytes and \
            info.file_size > limits.max_ratio * max(info.compress_size, 1):
        return Problem(_R.RATIO_EXCEEDED, name, f"{info.file_size} bytes from {info.compress_size} "
                                                f"(ratio over {limits.max_ratio:g})")
    return None


def _overlaps(path: Path, zf: zipfile.ZipFile) -> list[Problem]:
    """Each entry's local header + data must end before the next one starts (zip-bomb overlap)."""
    start_dir = getattr(zf, "start_dir", None)
    spans, problems = [], []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for info in zf.infolist():
            f.seek(min(max(info.header_offset, 0), size))
            head = f.read(30)
            if info.header_offset < 0 or len(head) < 30 or head[:4] != b"PK\x03\x04":
                problems.append(Problem(_R.CORRUPT, info.orig_filename, "no local header at its offset"))
                continue
            name_len, extra_len = struct.unpack("<HH", head[26:30])
            end = info.header_offset + 30 + name_len + extra_len + info.compress_size
            spans.append((info.header_offset, end, info.orig_filename))
    spans.sort()
    for (_, end0, name0), (start1, _, name1) in zip(spans, spans[1:]):
        if start1 < end0:
            problems.append(Problem(_R.OVERLAPPING_ENTRIES, name1, f"starts inside {escape_name(name0)}"))
    limit = start_dir if isinstance(start_dir, int) else size
    problems += [Problem(_R.OVERLAPPING_ENTRIES, name, "data runs into the central directory")
                 for _, end, name in spans if end > limit]
    return problems


def scan_zip(path: Path, zf: zipfile.ZipFile, limits: IntakeLimits) -> tuple[list[_Item], int]:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise reject(_R.TOO_MANY_ENTRIES, None, f"{len(infos)} entries, limit {limits.max_entries}")
    problems: list[Problem] = []
    items: list[_Item] = []
    for info in infos:
        raw = info.orig_filename
        is_dir = raw.endswith("/")
        problem = name_problem(raw, is_dir, limits) or _entry_problem(info, is_dir, limits)
        if problem:
            problems.append(problem)
        else:
            items.append(_Item(raw[:-1] if is_dir else raw, is_dir, 0 if is_dir else info.file_size, info))
    problems += collisions([(it.name, it.is_dir) for it in items])
    problems += _overlaps(path, zf)
    problems += _limit_problems(items, limits)
    total, archive_size = sum(it.size for it in items), path.stat().st_size
    if total >= limits.ratio_floor_bytes and total > limits.max_ratio * max(archive_size, 1):
        problems.append(Problem(_R.RATIO_EXCEEDED, None, f"{total} bytes from a {archive_size}-byte archive"))
    if problems:
        raise IntakeRejected(problems)
    return _keep(items)


def _zip_chunks(zf: zipfile.ZipFile, it: _Item) -> Iterator[bytes]:
    # Only reading is the participant's fault; a failed write (disk full) must stay an OSError.
    try:
        with zf.open(it.info) as src:  # type: ignore[arg-type]
            while chunk := src.read(_CHUNK):
                yield chunk
    except _ZIP_READ_ERRORS as exc:
        raise reject(_R.CORRUPT, it.name, f"cannot be read: {exc}") from None


def _mkdirs(dest: Path, rel: str, made: set[str]) -> None:
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        if sub in made:
            continue
        try:
            os.mkdir(dest / sub, 0o755)
        except FileExistsError:
            # only a case-insensitive store filesystem gets here; collisions were refused already
            raise reject(_R.DUPLICATE_NAME, sub, "collides on the store's filesystem") from None
        made.add(sub)


def _create(dest: Path, rel: str, made: set[str]) -> int:
    parent = rel.rpartition("/")[0]
    if parent:
        _mkdirs(dest, parent, made)
    try:
        return os.open(dest / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise reject(_R.DUPLICATE_NAME, rel, "collides on the store's filesystem") from None


class _Counter:
    """Counts bytes actually written: the only sizes that cannot lie."""

    def __init__(self, limits: IntakeLimits) -> None:
        self.limits, self.total, self.files = limits, 0, 0

    def add(self, it: _Item, written: int, n: int, compressed: int | None) -> None:
        self.total += n
        lim = self.limits
        if written > it.size:
            raise reject(_R.CORRUPT, it.name, f"yields more than its declared {it.size} bytes")
        if written > lim.max_entry_bytes:
            raise reject(_R.TOO_LARGE, it.name, f"over {lim.max_entry_bytes} bytes")
        if self.total > lim.max_total_bytes:
            raise reject(_R.TOO_LARGE, None, f"over {lim.max_total_bytes} bytes in all")
        if compressed is not None and written >= lim.ratio_floor_bytes and \
                written > lim.max_ratio * max(compressed, 1):
            raise reject(_R.RATIO_EXCEEDED, it.name, f"ratio over {lim.max_ratio:g} while extracting")


def extract_zip(zf: zipfile.ZipFile, items: Sequence[_Item], dest: Path, limits: IntakeLimits) -> tuple[int, int]:
    os.mkdir(dest, 0o700)  # FileExistsError here is a harness bug: dest must be fresh
    made: set[str] = set()
    counter = _Counter(limits)
    for it in items:
        if it.is_dir:
            _mkdirs(dest, it.name, made)
            continue
        written = 0
        with open(_create(dest, it.name, made), "wb") as out:
            for chunk in _zip_chunks(zf, it):
                written += len(chunk)
                counter.add(it, written, len(chunk), it.info.compress_size)  # type: ignore[union-attr]
                out.write(chunk)
        counter.files += 1
    return counter.files, counter.total


# ---------------------------------------------------------------- folder

def _scan_folder(src: Path, limits: IntakeLimits) -> tuple[list[_Item], int]:
    items: list[_Item] = []
    problems: list[Problem] = []
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(src / rel if rel else src) as entries:
            for de in entries:
                if len(items) + len(problems) >= limits.max_entries:
                    raise reject(_R.TOO_MANY_ENTRIES, None, f"more than {limits.max_entries} entries")
                name = f"{rel}/{de.name}" if rel else de.name
                st = de.stat(follow_symlinks=False)
                is_dir = stat.S_ISDIR(st.st_mode)
                problem = name_problem(name, is_dir, limits)
                if problem is None and stat.S_ISLNK(st.st_mode):
                    problem = Problem(_R.SYMLINK, name, "is a symbolic link")
                elif problem is None and not (is_dir or stat.S_ISREG(st.st_mode)):
                    problem = Problem(_R.SPECIAL_FILE, name, "is a device, FIFO or socket")
                if problem:
                    problems.append(problem)
                    continue
                items.append(_Item(name, is_dir, 0 if is_dir else st.st_size, ident=(st.st_dev, st.st_ino)))
                if is_dir:
                    pending.append(name)
    items.sort(key=lambda it: it.name.encode())
    problems += collisions([(it.name, it.is_dir) for it in items])
    problems += _limit_problems(items, limits)
    if problems:
        raise IntakeRejected(problems)
    return _keep(items)


def _copy_folder(src: Path, items: Sequence[_Item], dest: Path, limits: IntakeLimits) -> tuple[str, int, int]:
    """Copy and hash in one pass, so the sha names exactly the bytes that were stored."""
    digest = hashlib.sha256(b"aecc-folder-v1\n")
    os.mkdir(dest, 0o700)
    made: set[str] = set()
    counter = _Counter(limits)
    for it in items:
        if it.is_dir:
            _mkdirs(dest, it.name, made)
            digest.update(b"d " + it.name.encode() + b"\n")
            continue
        # O_NONBLOCK: a FIFO swapped in since the scan must not hang us; fstat then refuses it
        fd = os.open(src / it.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as fin:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != it.ident:
                raise UsageError(f"{escape_name(it.name)} changed while the folder was being read",
                                 fix="run intake again on a folder nobody is modifying")
            mode = b"755" if st.st_mode & stat.S_IXUSR else b"644"
            digest.update(b"f %s %d %s\n" % (mode, st.st_size, it.name.encode()))
            it = _Item(it.name, False, st.st_size)
            written = 0
            with open(_create(dest, it.name, made), "wb") as out:
                while chunk := fin.read(_CHUNK):
                    written += len(chunk)
                    counter.add(it, written, len(chunk), None)
                    digest.update(chunk)
                    out.write(chunk)
            if written != st.st_size:
                raise UsageError(f"{escape_name(it.name)} changed size while being read")
        counter.files += 1
    return digest.hexdigest(), counter.files, counter.total


# ---------------------------------------------------------------- store

def _rmtree(path: Path) -> None:
    # Stored trees are chmod a-w; give directories their write bit back first (walk never follows links).
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, 0o700)
    shutil.rmtree(path)


def _make_read_only(top: Path) -> None:
    for dirpath, _, filenames in os.walk(top, topdown=False):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o444)
        os.chmod(dirpath, 0o555)


@contextlib.contextmanager
def _store_lock(store: Path) -> Iterator[None]:
    fd = os.open(store, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _copy_archive(source: Path, dest: Path, limits: IntakeLimits) -> str:
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"cannot read {source}", found=str(exc)) from None
    digest = hashlib.sha256()
    with open(fd, "rb") as fin, open(dest, "xb") as out:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{source} is not a regular file", fix="pass a .zip file or a folder")
        copied = 0
        while chunk := fin.read(_CHUNK):
            copied += len(chunk)
            if copied > limits.max_total_bytes:
                raise reject(_R.TOO_LARGE, None, f"the archive is over {limits.max_total_bytes} bytes")
            digest.update(chunk)
            out.write(chunk)
    os.chmod(dest, 0o444)
    return digest.hexdigest()


def _unwrap(files: Path) -> str:
    children = list(files.iterdir())
    if len(children) == 1 and children[0].is_dir() and not children[0].is_symlink():
        return children[0].name
    return ""


def _load_stored(store: Path, sha: str, encoder: str | None) -> Submission | None:
    """The stored Submission for `sha`, or None when there is no complete entry."""
    entry = store / sha
    try:
        meta = json.loads((entry / MARKER_NAME).read_text(encoding="utf-8"))
        kind = SourceKind(meta["source_kind"])
        root_rel, counts = meta["root"], (meta["file_count"], meta["total_bytes"], meta["ignored_entries"])
        if meta["format"] != _MARKER_FORMAT or meta["sha256"] != sha or not isinstance(root_rel, str) \
                or "/" in root_rel or root_rel in ("..", ".") or not all(isinstance(c, int) for c in counts):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    root = entry / FILES_NAME / root_rel if root_rel else entry / FILES_NAME
    archive = entry / ARCHIVE_NAME if kind is SourceKind.ZIP else None
    return Submission(sha, kind, entry, root, archive, discover_encoder(root, encoder),
                      load_requirements(root), *counts)


def intake(source: Path, store: Path, limits: IntakeLimits | None = None, *,
           encoder: str | None = None) -> Submission:
    """Validate `source` (a .zip or a folder) and store it as `store/<sha256>/`; idempotent.

    Raises IntakeRejected (an IntakeError) for anything the participant must fix and UsageError for
    a bad `source`/`store`/`encoder` argument. Nothing is written outside `store`.
    """
    limits = limits if limits is not None else IntakeLimits()
    source, store = Path(source).absolute(), Path(store).absolute()
    if encoder is not None:
        parse_spec(encoder, "--encoder")
    if source.is_dir():
        kind = SourceKind.FOLDER
        if store.resolve() == source.resolve() or source.resolve() in store.resolve().parents:
            raise UsageError(f"the store {store} is inside the submission folder {source}",
                             fix="choose a store outside the folder")
    elif source.is_file():
        kind = SourceKind.ZIP
    else:
        raise UsageError(f"{source} is not a file or folder", expected="a .zip file or a folder",
                         found="missing" if not source.exists() else "a special file")
    if store.exists() and not store.is_dir():
        raise UsageError(f"store {store} exists and is not a directory")
    store.mkdir(mode=0o700, parents=True, exist_ok=True)

    with _store_lock(store):
        for leftover in store.glob(_TMP_PREFIX + "*"):  # a crashed intake's; we hold the lock
            _rmtree(leftover)
        tmp: Path | None = store / f"{_TMP_PREFIX}{os.getpid()}"
        os.mkdir(tmp, 0o700)
        try:
            ignored = 0
            if kind is SourceKind.ZIP:
                sha = _copy_archive(source, tmp / ARCHIVE_NAME, limits)
                done = _load_stored(store, sha, encoder)
                if done is not None:
                    return done
                with open_zip(tmp / ARCHIVE_NAME) as zf:
                    items, ignored = scan_zip(tmp / ARCHIVE_NAME, zf, limits)
                    files, total = extract_zip(zf, items, tmp / FILES_NAME, limits)
            else:
                items, ignored = _scan_folder(source, limits)
                sha, files, total = _copy_folder(source, items, tmp / FILES_NAME, limits)
                done = _load_stored(store, sha, encoder)
                if done is not None:
                    return done
            root_rel = _unwrap(tmp / FILES_NAME)
            # check before committing, so the store only ever holds submissions that passed intake
            discover_encoder(tmp / FILES_NAME / root_rel, encoder)
            load_requirements(tmp / FILES_NAME / root_rel)
            _make_read_only(tmp / FILES_NAME)
            meta = {"format": _MARKER_FORMAT, "sha256": sha, "source_kind": kind.value, "root": root_rel,
                    "file_count": files, "total_bytes": total, "ignored_entries": ignored}
            (tmp / MARKER_NAME).write_text(json.dumps(meta, sort_keys=True) + "\n", encoding="utf-8")
            os.chmod(tmp / MARKER_NAME, 0o444)
            entry = store / sha
            if entry.exists() or entry.is_symlink():
                _rmtree(entry)  # half-written: no valid marker, or _load_stored would have returned
            os.rename(tmp, entry)
            tmp = None
            stored = _load_stored(store, sha, encoder)
            assert stored is not None, "a just-committed store entry must load"
            return stored
        finally:
            if tmp is not None:
                _rmtree(tmp)
