"""Intake: a participant's ZIP (or folder) becomes an immutable, content-addressed submission.

Policy (DESIGN.md "intake", research/sandboxing.md section 2):

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

import ast
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

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness.errors import IntakeError, UsageError

MiB = 1024 * 1024
GiB = 1024 * MiB
MANIFEST_NAME = "aecc.json"
REQUIREMENTS_NAME = "requirements.txt"
CHECKER_NAME = "audio_encoder_checker.py"
MARKER_NAME = "intake.json"
ARCHIVE_NAME = "submission.zip"
FILES_NAME = "files"
_TMP_PREFIX = ".intake-"
_JUNK_DIR = "__MACOSX"
_MARKER_FORMAT = 1
_CHUNK = MiB
_NAME_MAX = 255  # bytes per component on ext4/xfs/apfs
_MAX_PARSED_BYTES = 10 * MiB  # cap on any .py/json/txt the host reads from a submission
_MAX_REPORTED = 5
_UNIX_SYSTEMS = (3, 19)  # Unix, OS X: both store st_mode in external_attr >> 16
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DRIVE = re.compile(r"^[A-Za-z]:")
_SPEC = re.compile(r"^(?P<file>(?:[A-Za-z_]\w*/)*[A-Za-z_]\w*\.py):(?P<cls>[A-Za-z_]\w*)$", re.ASCII)
_HASH = re.compile(r"^(sha256|sha384|sha512):[0-9a-fA-F]+$")
_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.IGNORECASE)
_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError,
                    NotImplementedError, RuntimeError, ValueError, struct.error)


class RejectReason(str, enum.Enum):
    """Stable ids for why intake refused a submission (they appear in reports and JSON)."""

    ABSOLUTE_PATH = "absolute_path"
    PARENT_TRAVERSAL = "parent_traversal"
    BACKSLASH = "backslash"
    NUL_BYTE = "nul_byte"
    DRIVE_LETTER = "drive_letter"
    CONTROL_CHAR = "control_char"
    INVALID_NAME = "invalid_name"
    PATH_TOO_LONG = "path_too_long"
    TOO_DEEP = "too_deep"
    SYMLINK = "symlink"
    SPECIAL_FILE = "special_file"
    ENCRYPTED = "encrypted"
    OVERLAPPING_ENTRIES = "overlapping_entries"
    DUPLICATE_NAME = "duplicate_name"
    TOO_MANY_ENTRIES = "too_many_entries"
    TOO_LARGE = "too_large"
    RATIO_EXCEEDED = "ratio_exceeded"
    CORRUPT = "corrupt"
    TRUNCATED = "truncated"
    EMPTY = "empty"
    NOT_A_ZIP = "not_a_zip"
    UNSUPPORTED_COMPRESSION = "unsupported_compression"
    MANIFEST_INVALID = "manifest_invalid"
    ENCODER_NOT_FOUND = "encoder_not_found"
    ENCODER_AMBIGUOUS = "encoder_ambiguous"
    SYNTAX_ERROR = "syntax_error"
    REQUIREMENT_OPTION = "requirement_option"
    REQUIREMENT_URL = "requirement_url"
    REQUIREMENT_PATH = "requirement_path"
    REQUIREMENT_SYNTAX = "requirement_syntax"


class SourceKind(str, enum.Enum):
    ZIP = "zip"
    FOLDER = "folder"


class EncoderSource(str, enum.Enum):
    OVERRIDE = "override"
    MANIFEST = "manifest"
    XARES_RULE = "xares_rule"


_R = RejectReason
_ENCODER_FIX = (f'name the encoder in {MANIFEST_NAME} at the submission root, e.g. '
                '{"encoder": "template.py:MyEncoder"}, or pass --encoder file.py:ClassName')
_ARCHIVE_FIX = "re-create the ZIP from a plain folder of regular files (e.g. `cd folder && zip -r ../sub.zip .`)"
_RULES: dict[RejectReason, tuple[str, str]] = {
    _R.ABSOLUTE_PATH: ("relative paths only", "remove the leading '/' from entry names; " + _ARCHIVE_FIX),
    _R.PARENT_TRAVERSAL: ("no '..' path component", _ARCHIVE_FIX),
    _R.BACKSLASH: ("'/' as the only separator, no backslash in names", "zip on Linux/macOS or with a tool that writes '/'"),
    _R.NUL_BYTE: ("no NUL byte in names", "rename the file"),
    _R.DRIVE_LETTER: ("no drive letter (C:) in names", _ARCHIVE_FIX),
    _R.CONTROL_CHAR: ("no control or bidi-override characters in names", "rename the file with printable characters"),
    _R.INVALID_NAME: ("UTF-8 names with no empty or '.' component", "rename the file"),
    _R.PATH_TOO_LONG: ("paths and components within the length limits", "shorten the path"),
    _R.TOO_DEEP: ("directory depth within the limit", "flatten the directory tree"),
    _R.SYMLINK: ("regular files and directories only", "replace the symlink with the file it points to"),
    _R.SPECIAL_FILE: ("regular files and directories only", "remove devices, FIFOs and sockets"),
    _R.ENCRYPTED: ("unencrypted entries", "zip without a password"),
    _R.OVERLAPPING_ENTRIES: ("entries that do not share bytes", _ARCHIVE_FIX),
    _R.DUPLICATE_NAME: ("names unique after Unicode NFC + case folding, none both file and directory",
                        "rename one of the colliding entries"),
    _R.TOO_MANY_ENTRIES: ("at most max_entries entries", "pack many small files into one (e.g. one weights file)"),
    _R.TOO_LARGE: ("sizes within max_entry_bytes / max_total_bytes",
                   "shrink the submission, or let the encoder download its weights at first construction"),
    _R.RATIO_EXCEEDED: ("compression ratio at most max_ratio", "do not ship highly repetitive filler data"),
    _R.CORRUPT: ("a readable ZIP with correct CRCs", _ARCHIVE_FIX),
    _R.TRUNCATED: ("a complete ZIP file", "the upload was cut short: send the file again"),
    _R.EMPTY: ("at least one file", "zip the folder holding your encoder"),
    _R.NOT_A_ZIP: ("a ZIP archive", "send a .zip file (not .tar.gz, .rar or .7z)"),
    _R.UNSUPPORTED_COMPRESSION: ("stored, deflate, bzip2 or lzma compression", "re-zip with default (deflate) compression"),
    _R.MANIFEST_INVALID: (f'{MANIFEST_NAME} = {{"encoder": "file.py:ClassName"}}', _ENCODER_FIX),
    _R.ENCODER_NOT_FOUND: ("an encoder class whose name ends in 'Encoder'", _ENCODER_FIX),
    _R.ENCODER_AMBIGUOUS: ("exactly one module-level name ending in 'Encoder' (the X-ARES rule)", _ENCODER_FIX),
    _R.SYNTAX_ERROR: ("Python 3.11 source that parses", "fix the syntax error at the line shown"),
    _R.REQUIREMENT_OPTION: ("requirement lines only (name, version, extras, markers, --hash)",
                            "remove the option line; the build installs from the harness's own package set"),
    _R.REQUIREMENT_URL: ("packages by name and version", "use `name==version` of a release on PyPI, "
                         "or put the code inside your ZIP"),
    _R.REQUIREMENT_PATH: ("packages by name and version", "put the code inside your ZIP and import it directly"),
    _R.REQUIREMENT_SYNTAX: ("PEP 508 requirement lines", "fix the line shown (e.g. `numpy>=1.24`)"),
}


def _scrub(text: str) -> str:
    """Escape control, format (bidi), separator and unassigned characters; keep the rest readable."""
    out = []
    for ch in text:
        if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp"):
            o = ord(ch)
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
        else:
            out.append(ch)
    return "".join(out)


def escape_name(name: str, limit: int = 200) -> str:
    """Quote a participant-chosen name so it is unambiguous and inert on a terminal."""
    s = _scrub(name.replace("\\", "\\\\").replace("'", "\\'"))
    return "'" + (s[:limit] + "..." if len(s) > limit else s) + "'"


@dataclass(frozen=True)
class Problem:
    reason: RejectReason
    entry: str | None
    detail: str

    def __post_init__(self) -> None:
        if not isinstance(self.reason, RejectReason):
            raise TypeError(f"reason must be a RejectReason, not {self.reason!r}")

    def render(self) -> str:
        where = escape_name(self.entry) if self.entry is not None else "(archive)"
        return f"[{self.reason.value}] {where}: {_scrub(self.detail)}"


class IntakeRejected(IntakeError):
    """Intake refused the submission. `reason`/`entry` are the first problem's; `problems` has all."""

    def __init__(self, problems: Sequence[Problem], *, expected: str | None = None,
                 fix: str | None = None) -> None:
        if not problems:
            raise TypeError("IntakeRejected needs at least one problem")
        self.problems = tuple(problems)
        self.reason = self.problems[0].reason
        self.entry = self.problems[0].entry
        rule, default_fix = _RULES[self.reason]
        lines = [p.render() for p in self.problems[:_MAX_REPORTED]]
        if len(self.problems) > _MAX_REPORTED:
            lines.append(f"... and {len(self.problems) - _MAX_REPORTED} more")
        super().__init__(
            f"submission refused at intake ({self.reason.value}): {len(self.problems)} problem(s)",
            expected=expected or rule, found="\n            ".join(lines), fix=fix or default_fix)


def _reject(reason: RejectReason, entry: str | None, detail: str, **kw: str) -> IntakeRejected:
    return IntakeRejected([Problem(reason, entry, detail)], **kw)


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
class Requirements:
    lines: tuple[str, ...] = ()
    torch_pin: str | None = None  # "2.2.1" from `torch==2.2.1`
    torch_specifier: str | None = None  # any torch specifier, e.g. ">=2.1", for the build to check

    def __post_init__(self) -> None:
        if not isinstance(self.lines, tuple) or not all(isinstance(x, str) for x in self.lines):
            raise TypeError("Requirements.lines must be a tuple of str")

    def to_dict(self) -> dict[str, Any]:
        return {"lines": list(self.lines), "torch_pin": self.torch_pin, "torch_specifier": self.torch_specifier}


@dataclass(frozen=True)
class EncoderRef:
    file: str  # POSIX path relative to the submission root
    class_name: str
    source: EncoderSource

    def __post_init__(self) -> None:
        if not _SPEC.match(f"{self.file}:{self.class_name}") or not isinstance(self.source, EncoderSource):
            raise TypeError(f"invalid EncoderRef {self.file!r}:{self.class_name!r} ({self.source!r})")

    @property
    def spec(self) -> str:
        return f"{self.file}:{self.class_name}"

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "class": self.class_name, "source": self.source.value}


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

def _name_problem(name: str, is_dir: bool, limits: IntakeLimits) -> Problem | None:
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


def _collisions(entries: Sequence[tuple[str, bool]]) -> list[Problem]:
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
        raise _reject(_R.EMPTY, None, "no files (directories and __MACOSX/ entries only, or nothing)")
    return kept, len(items) - len(kept)


# ---------------------------------------------------------------- ZIP

def _open_zip(path: Path) -> zipfile.ZipFile:
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise _reject(_R.EMPTY, None, "the file is 0 bytes")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        if head == b"PK\x03\x04" and "not a zip file" in str(exc):
            raise _reject(_R.TRUNCATED, None, "starts like a ZIP but has no end-of-central-directory record") from None
        if head[:2] != b"PK":
            raise _reject(_R.NOT_A_ZIP, None, f"the file starts with {head!r}, not a ZIP signature") from None
        raise _reject(_R.CORRUPT, None, f"unreadable central directory: {exc}") from None
    except (OSError, EOFError, ValueError, struct.error, NotImplementedError) as exc:
        raise _reject(_R.CORRUPT, None, f"unreadable central directory: {exc}") from None


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


def _scan_zip(path: Path, zf: zipfile.ZipFile, limits: IntakeLimits) -> tuple[list[_Item], int]:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise _reject(_R.TOO_MANY_ENTRIES, None, f"{len(infos)} entries, limit {limits.max_entries}")
    problems: list[Problem] = []
    items: list[_Item] = []
    for info in infos:
        raw = info.orig_filename
        is_dir = raw.endswith("/")
        problem = _name_problem(raw, is_dir, limits) or _entry_problem(info, is_dir, limits)
        if problem:
            problems.append(problem)
        else:
            items.append(_Item(raw[:-1] if is_dir else raw, is_dir, 0 if is_dir else info.file_size, info))
    problems += _collisions([(it.name, it.is_dir) for it in items])
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
        raise _reject(_R.CORRUPT, it.name, f"cannot be read: {exc}") from None


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
            raise _reject(_R.DUPLICATE_NAME, sub, "collides on the store's filesystem") from None
        made.add(sub)


def _create(dest: Path, rel: str, made: set[str]) -> int:
    parent = rel.rpartition("/")[0]
    if parent:
        _mkdirs(dest, parent, made)
    try:
        return os.open(dest / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise _reject(_R.DUPLICATE_NAME, rel, "collides on the store's filesystem") from None


class _Counter:
    """Counts bytes actually written: the only sizes that cannot lie."""

    def __init__(self, limits: IntakeLimits) -> None:
        self.limits, self.total, self.files = limits, 0, 0

    def add(self, it: _Item, written: int, n: int, compressed: int | None) -> None:
        self.total += n
        lim = self.limits
        if written > it.size:
            raise _reject(_R.CORRUPT, it.name, f"yields more than its declared {it.size} bytes")
        if written > lim.max_entry_bytes:
            raise _reject(_R.TOO_LARGE, it.name, f"over {lim.max_entry_bytes} bytes")
        if self.total > lim.max_total_bytes:
            raise _reject(_R.TOO_LARGE, None, f"over {lim.max_total_bytes} bytes in all")
        if compressed is not None and written >= lim.ratio_floor_bytes and \
                written > lim.max_ratio * max(compressed, 1):
            raise _reject(_R.RATIO_EXCEEDED, it.name, f"ratio over {lim.max_ratio:g} while extracting")


def _extract_zip(zf: zipfile.ZipFile, items: Sequence[_Item], dest: Path, limits: IntakeLimits) -> tuple[int, int]:
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
                    raise _reject(_R.TOO_MANY_ENTRIES, None, f"more than {limits.max_entries} entries")
                name = f"{rel}/{de.name}" if rel else de.name
                st = de.stat(follow_symlinks=False)
                is_dir = stat.S_ISDIR(st.st_mode)
                problem = _name_problem(name, is_dir, limits)
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
    problems += _collisions([(it.name, it.is_dir) for it in items])
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
                raise _reject(_R.TOO_LARGE, None, f"the archive is over {limits.max_total_bytes} bytes")
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
        _parse_spec(encoder, "--encoder")
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
                with _open_zip(tmp / ARCHIVE_NAME) as zf:
                    items, ignored = _scan_zip(tmp / ARCHIVE_NAME, zf, limits)
                    files, total = _extract_zip(zf, items, tmp / FILES_NAME, limits)
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


# ---------------------------------------------------------------- encoder discovery (static only)

def _parse_spec(spec: str, origin: str) -> tuple[str, str]:
    m = _SPEC.match(spec) if isinstance(spec, str) else None
    if m is None or not m["cls"].endswith("Encoder"):
        detail = (f"{origin} must be 'file.py:ClassName': a relative path of importable names and a "
                  f"class name ending in 'Encoder'; got {escape_name(str(spec))}")
        if origin == "--encoder":
            raise UsageError(f"invalid --encoder {escape_name(str(spec))}", expected="file.py:ClassName",
                             found=detail, fix="e.g. --encoder template.py:MyEncoder")
        raise _reject(_R.MANIFEST_INVALID, MANIFEST_NAME, detail)
    return m["file"], m["cls"]


def _read_capped(path: Path, entry: str, reason: RejectReason) -> bytes:
    if not path.is_file() or path.is_symlink():
        raise _reject(reason, entry, "is not a regular file")
    if path.stat().st_size > _MAX_PARSED_BYTES:
        raise _reject(_R.TOO_LARGE, entry, f"over {_MAX_PARSED_BYTES} bytes; the host will not parse it")
    return path.read_bytes()


_Binding = tuple[str, str | None, str | None]  # (kind, imported-from module, original name)


def _module_names(root: Path, rel: str) -> dict[str, _Binding]:
    """Module-level names of `rel` as `dir(module)` would show them, found by parsing, never importing."""
    try:
        tree = ast.parse(_read_capped(root / rel, rel, _R.ENCODER_NOT_FOUND), filename=rel)
    except SyntaxError as exc:
        raise _reject(_R.SYNTAX_ERROR, rel, f"line {exc.lineno}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise _reject(_R.SYNTAX_ERROR, rel, f"cannot be parsed: {exc}") from None
    names: dict[str, _Binding] = {}

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                names[node.name] = ("class", None, None)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names[node.name] = ("def", None, None)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    names[a.asname or a.name.split(".")[0]] = ("import", None, None)
            elif isinstance(node, ast.ImportFrom):
                module = node.module if node.level <= 1 else None
                for a in node.names:
                    if a.name != "*":
                        names[a.asname or a.name] = ("import", module, a.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            names[n.id] = ("assign", None, None)
            # names bound inside module-level if/try/with/for/while are module attributes too
            for block in ("body", "orelse", "finalbody"):
                if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    visit(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                visit(handler.body)

    visit(tree.body)
    return names


def _require_binding(root: Path, file: str, cls: str, origin: str) -> None:
    path = root / file
    if not path.is_file() or path.is_symlink():
        raise _reject(_R.ENCODER_NOT_FOUND, file, f"named by {origin}, but there is no such file")
    names = _module_names(root, file)
    if cls not in names:
        found = sorted(n for n in names if n.endswith("Encoder"))
        raise _reject(_R.ENCODER_NOT_FOUND, file, f"{origin} names {cls}, which {file} does not define; "
                                                  f"names ending in Encoder there: {', '.join(found) or 'none'}")


def discover_encoder(root: Path, override: str | None = None) -> EncoderRef:
    """Locate the encoder class: `override`, then `aecc.json`, then the X-ARES rule (see module doc)."""
    if override is not None:
        file, cls = _parse_spec(override, "--encoder")
        _require_binding(root, file, cls, "--encoder")
        return EncoderRef(file, cls, EncoderSource.OVERRIDE)
    manifest = root / MANIFEST_NAME
    if manifest.exists() or manifest.is_symlink():
        raw = _read_capped(manifest, MANIFEST_NAME, _R.MANIFEST_INVALID)
        try:
            data = json.loads(raw.decode("utf-8"))
        except json.JSONDecodeError as exc:
            raise _reject(_R.MANIFEST_INVALID, MANIFEST_NAME, f"not valid JSON: line {exc.lineno}: {exc.msg}") from None
        except UnicodeDecodeError:
            raise _reject(_R.MANIFEST_INVALID, MANIFEST_NAME, "not UTF-8") from None
        if not isinstance(data, dict) or set(data) != {"encoder"} or not isinstance(data["encoder"], str):
            raise _reject(_R.MANIFEST_INVALID, MANIFEST_NAME,
                          'must be a JSON object with exactly one key, "encoder", whose value is a string')
        file, cls = _parse_spec(data["encoder"], MANIFEST_NAME)
        _require_binding(root, file, cls, MANIFEST_NAME)
        return EncoderRef(file, cls, EncoderSource.MANIFEST)

    modules = sorted(p.name for p in root.iterdir() if p.suffix == ".py" and p.stem.isidentifier()
                     and p.name != CHECKER_NAME and p.is_file() and not p.is_symlink())
    table = {f: _module_names(root, f) for f in modules}
    candidates = []
    for file, names in table.items():
        for name, (kind, module, original) in sorted(names.items()):
            if not name.endswith("Encoder"):
                continue
            defined_in = table.get(f"{module}.py", {}) if module else {}
            if kind == "import" and original in defined_in and original.endswith("Encoder"):
                continue  # counted where it is defined
            candidates.append((file, name, kind))
    if len(candidates) == 1 and candidates[0][2] in ("class", "import", "assign"):
        return EncoderRef(candidates[0][0], candidates[0][1], EncoderSource.XARES_RULE)
    listing = ", ".join(f"{f}:{n} ({k})" for f, n, k in candidates)
    scanned = ", ".join(modules) or "no top-level .py files"
    if not candidates:
        raise _reject(_R.ENCODER_NOT_FOUND, None, f"no module-level name ending in 'Encoder' in {scanned}")
    raise _reject(_R.ENCODER_AMBIGUOUS, candidates[0][0], f"{len(candidates)} candidates: {listing}; "
                  "X-ARES itself would refuse a module with more than one")


# ---------------------------------------------------------------- requirements.txt

_OPTION_WHY = {
    ("-i", "--index-url", "--extra-index-url", "--no-index", "-f", "--find-links", "--trusted-host"):
        "changes where packages come from; the build installs only from the harness's package set, offline",
    ("-e", "--editable"): "editable installs run a package's own build code; put the code inside your ZIP",
    ("-r", "--requirement", "-c", "--constraint"): "includes read other files; list everything in this file",
}


def _option_problem(lineno: int, token: str) -> Problem:
    name = token.split("=", 1)[0] if token.startswith("--") else token[:2]
    why = next((w for opts, w in _OPTION_WHY.items() if name in opts), "only --hash is allowed")
    if name == "--hash":
        why = "a --hash option must follow a requirement on the same line"
    return Problem(_R.REQUIREMENT_OPTION, REQUIREMENTS_NAME, f"line {lineno}: option {name}: {why}")


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """pip's reading: backslash continuations joined, ` #` comments removed."""
    buf, start = "", 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not buf:
            start = lineno
        if line.endswith("\\"):
            buf += line[:-1]
            continue
        yield start, re.sub(r"(^|\s+)#.*$", "", buf + line).strip()
        buf = ""
    if buf:
        yield start, re.sub(r"(^|\s+)#.*$", "", buf).strip()


def _requirement_problem(lineno: int, req_text: str) -> tuple[Problem | None, Requirement | None]:
    def bad(reason: RejectReason, detail: str) -> tuple[Problem, None]:
        return Problem(reason, REQUIREMENTS_NAME, f"line {lineno}: {detail}"), None

    if "://" in req_text or _VCS.match(req_text) or req_text.lower().startswith("file:"):
        return bad(_R.REQUIREMENT_URL, f"direct URL or VCS reference {escape_name(req_text)}")
    spec = req_text.split(";", 1)[0]
    if spec.startswith((".", "/", "~")) or "/" in spec or "\\" in spec or spec.lower().endswith(_ARCHIVE_SUFFIXES):
        return bad(_R.REQUIREMENT_PATH, f"local path or archive {escape_name(req_text)}")
    try:
        req = Requirement(req_text)
    except InvalidRequirement as exc:
        return bad(_R.REQUIREMENT_SYNTAX, f"not a PEP 508 requirement: {str(exc).splitlines()[0]}")
    if req.url:
        return bad(_R.REQUIREMENT_URL, f"direct reference {escape_name(req_text)}")
    return None, req


def parse_requirements(text: str) -> Requirements:
    """Validate requirements.txt text (allowed set in the module doc); refuse with every problem found."""
    problems: list[Problem] = []
    lines: list[str] = []
    torch: list[Requirement] = []
    for lineno, line in _logical_lines(text):
        if not line:
            continue
        tokens = line.split()
        cut = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
        req_text, options = " ".join(tokens[:cut]), tokens[cut:]
        if not req_text:
            problems.append(_option_problem(lineno, options[0]))
            continue
        i, bad_option = 0, None
        while i < len(options) and bad_option is None:
            opt = options[i]
            value = opt[len("--hash="):] if opt.startswith("--hash=") else (
                options[i + 1] if opt == "--hash" and i + 1 < len(options) else None)
            i += 1 if opt.startswith("--hash=") else 2
            if opt.split("=", 1)[0] != "--hash":
                bad_option = _option_problem(lineno, opt)
            elif value is None or not _HASH.match(value):
                bad_option = Problem(_R.REQUIREMENT_OPTION, REQUIREMENTS_NAME,
                                     f"line {lineno}: --hash needs sha256/sha384/sha512:<hex>")
        problem, req = _requirement_problem(lineno, req_text)
        if problem or bad_option:
            problems.append(problem or bad_option)  # type: ignore[arg-type]
            continue
        if canonicalize_name(req.name) == "torch":  # type: ignore[union-attr]
            if torch:  # two pins would leave the build to guess which torch layer to use
                problems.append(Problem(_R.REQUIREMENT_SYNTAX, REQUIREMENTS_NAME,
                                        f"line {lineno}: torch is named a second time"))
            torch.append(req)  # type: ignore[arg-type]
        lines.append(line)
    if problems:
        raise IntakeRejected(problems)
    pin = spec = None
    if torch:
        specs = list(torch[0].specifier)
        spec = str(torch[0].specifier) or None
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            pin = specs[0].version
    return Requirements(tuple(lines), pin, spec)


def load_requirements(root: Path) -> Requirements:
    """`requirements.txt` at the submission root, or no requirements when there is none."""
    path = root / REQUIREMENTS_NAME
    if not (path.exists() or path.is_symlink()):
        return Requirements()
    try:
        text = _read_capped(path, REQUIREMENTS_NAME, _R.REQUIREMENT_SYNTAX).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _reject(_R.REQUIREMENT_SYNTAX, REQUIREMENTS_NAME, "not UTF-8 text") from None
    return parse_requirements(text)
