"""A task's folder under ENV, as X-ARES 0.1.3 lays it out, and the archive-safety rules applied to it.

X-ARES downloads a task with `download_zenodo_record` (xares/utils.py): the record's whole
`files-archive` zip is saved as `ENV/<name>/<id>.zip` and unzipped into `ENV/<name>/`, so every file of
the record lands in the task folder under its record key; then `XaresTask` touches
`ENV/<name>/.audio_tar_ready` (`XaresSettings.audio_ready_filename`). Its readers glob the task's
`audio_tar_name_of_split` patterns in that folder. Fetching file by file gives the same folder
without the intermediate zip:

    ENV/<name>/<record key>...        every file of the record, as the record names it
    ENV/<name>/<entries of a .zip>    a record file that is itself a ZIP is also unpacked here
    ENV/<name>/manifest.json          what was fetched: every file's size and checksums, the record's version
    ENV/<name>/.audio_tar_ready       written last, only when every file checks
    ENV/<name>/.aecc-download/        partial downloads (`<key>.part`), removed when the task is complete

The record's keys and any ZIP's entries are names chosen by someone else, so they pass intake's own
checks (`harness.stages.intake`: no traversal, absolute path, drive letter, backslash, control or
bidi character, NFC/case collision; links, devices, encryption, overlaps, bombs), with size limits
sized for datasets rather than submissions; nothing is written outside the task folder. The
adapter to intake's checks is `_intake_rules`, the one place that names them.

Hashing: `digests(path)` reads a file once for its md5 (Zenodo's checksum) and sha256, cached by
(path, size, mtime, ctime, inode): per process, and for `aecc data fetch` across runs on this machine
(`$AECC_HOME/cache/data-digests.json`), so a rerun over a complete ENV reads nothing again. Any write
changes the ctime, so a changed file is read again. `aecc data verify` reads every file itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import stat
import threading
from pathlib import Path
from typing import Iterable, Sequence

from harness.errors import InfraError

#: X-ARES's `XaresSettings.audio_ready_filename`
MARKER = ".audio_tar_ready"
MANIFEST_NAME = "manifest.json"
#: partial downloads of a task, inside its folder (so a copied ENV resumes too)
PARTIAL_DIR = ".aecc-download"
PARTIAL_SUFFIX = ".part"
#: what X-ARES run directly on an env writes into a task folder; not data (prepare's fingerprint skips them too)
XARES_DERIVED = ("embeddings", "checkpoints")
#: what X-ARES's own download leaves beside the data (`<id>.zip`, `.unzipped`): reported, never required
XARES_LEFTOVERS = (".unzipped",)
#: names a record may not use: they are the harness's or X-ARES's own
RESERVED = frozenset({MARKER, MANIFEST_NAME, PARTIAL_DIR, *XARES_DERIVED})
#: the mode of every file and folder written: the sandbox user (uid 10001) reads them through a bind mount
FILE_MODE = 0o644
DIR_MODE = 0o755
#: record files unpacked into the task folder (X-ARES's shards are plain .tar files and are never unpacked)
UNPACKED_SUFFIXES = (".zip",)
CHUNK = 1 << 20

MiB = 1024**2
GiB = 1024**3
TiB = 1024**4


class ArchiveRefused(InfraError):
    """A record's file names, or a ZIP in the record, break the archive-safety rules."""


def _intake_rules():
    """Intake's archive checks (harness.stages.intake), used here unchanged.

    Intake keeps these helpers module-private; this is the one place that reaches them, so a rename
    there is one line here (and `tests/harness/data/test_layout.py` fails at once if it happens)."""
    from harness.stages import intake

    return intake


def data_limits():
    """Intake's limits, widened for datasets (FSD50K is tens of GB, ~50k clips in shards)."""
    from harness.stages.intake import IntakeLimits

    return IntakeLimits(max_entries=1_000_000, max_total_bytes=4 * TiB, max_entry_bytes=TiB, max_ratio=100.0,
                        ratio_floor_bytes=MiB, max_path_length=512, max_depth=32)


# --------------------------------------------------------------------------------------------------
# Names


def name_problems(names: Sequence[str], *, what: str = "record file", collisions: bool = True) -> list[str]:
    """Why these names (record keys, '/'-separated) cannot be written into a task folder; [] when they can.

    Intake's name rules and its NFC/case-fold collision check, plus the names the harness and X-ARES
    use themselves (manifest.json, the marker, the partial-download folder, embeddings/, checkpoints/)."""
    intake = _intake_rules()
    limits = data_limits()
    out = []
    for name in names:
        problem = intake.name_problem(name, False, limits)
        if problem is not None:
            out.append(problem.render())
        elif name.split("/", 1)[0] in RESERVED:
            out.append(f"{intake.escape_name(name)}: a {what} may not be called {name.split('/', 1)[0]!r} "
                       "(the harness or X-ARES writes that name into the task folder)")
    if collisions:
        out += [p.render() for p in intake.collisions([(n, False) for n in names])]
    return out


def check_names(task: str, names: Sequence[str], *, source: str) -> None:
    """Raises ArchiveRefused naming the first problems, when any name is unsafe."""
    found = name_problems(names)
    if found:
        raise ArchiveRefused(f"task {task}: {source} names files that cannot be written safely",
                             expected="relative '/'-separated names inside the task folder (intake's rules: no "
                                      "'..', absolute path, drive letter, backslash, control character or "
                                      "collision), none of " + ", ".join(sorted(RESERVED)),
                             found="; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else ""),
                             fix="nothing was written; report the record to the organizers (or fix the mirror)")


def check_parents(folder: Path, rel: str, *, task: str) -> None:
    """Every folder between the task folder and `rel` that exists is a plain folder, not a link (a link
    there would carry a write outside the task folder).

    Raises:
        ArchiveRefused: naming the link.
    """
    current = Path(folder)
    for part in rel.split("/")[:-1]:
        current = current / part
        if current.is_symlink() or (os.path.lexists(current) and not current.is_dir()):
            raise ArchiveRefused(f"task {task}: {current} is in the way of {rel}",
                                 expected=f"a plain folder {part}/ inside the task folder, or nothing",
                                 found="a symbolic link" if current.is_symlink() else "a file",
                                 fix="remove it and fetch again: nothing is written through a link")


def is_unpacked(key: str) -> bool:
    return key.lower().endswith(UNPACKED_SUFFIXES)


# --------------------------------------------------------------------------------------------------
# Hashing


@dataclasses.dataclass(frozen=True)
class Digests:
    size: int
    md5: str
    sha256: str

    def checksum(self, algorithm: str) -> str:
        """The hex digest for `algorithm` (md5 or sha256; anything else is hashed on demand by the caller)."""
        return {"md5": self.md5, "sha256": self.sha256}[algorithm]


_CACHE: dict[tuple, Digests] = {}
_CACHE_LOCK = threading.Lock()
#: digests of earlier runs on this machine ($AECC_HOME/cache/data-digests.json), so that a rerun of
#: `aecc data fetch` over a large ENV does not read every file again; `aecc data verify` never uses it
_DISK: dict[str, list] | None = None
_DISK_DIRTY = False
DISK_CACHE_NAME = "data-digests.json"


def _key(path: Path, st: os.stat_result) -> tuple:
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _disk_key(key: tuple) -> str:
    return "|".join(str(k) for k in key)


def _disk() -> dict[str, list]:
    global _DISK
    if _DISK is None:
        from harness import paths

        try:
            loaded = json.loads((paths.subdir("cache") / DISK_CACHE_NAME).read_text())
            _DISK = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            _DISK = {}
    return _DISK


def digests(path: Path, *, trust_disk: bool = True) -> Digests:
    """Size, md5 and sha256 of a regular file, read once; cached while the file is unchanged (same size,
    mtime, ctime and inode). `trust_disk=False` ignores what earlier processes recorded.

    Raises:
        OSError: unreadable (FileNotFoundError when absent).
    """
    path = Path(path)
    st = os.stat(path)
    key = _key(path.resolve(), st)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)  # read by this process
        if hit is None and trust_disk:  # read by an earlier one (kept apart: verify trusts only this process)
            row = _disk().get(_disk_key(key))
            if isinstance(row, list) and len(row) == 3:
                hit = Digests(*row)
    if hit is not None:
        return hit
    found = _read(path)
    remember(path, found)
    return found


def _read(path: Path) -> Digests:
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            md5.update(chunk)
            sha.update(chunk)
            size += len(chunk)
    return Digests(size, md5.hexdigest(), sha.hexdigest())


def remember(path: Path, found: Digests) -> None:
    """Record digests computed while writing `path` (the downloader hashes as it writes)."""
    global _DISK_DIRTY
    st = os.stat(path)
    if st.st_size == found.size:
        key = _key(Path(path).resolve(), st)
        with _CACHE_LOCK:
            _CACHE[key] = found
            _disk()[_disk_key(key)] = [found.size, found.md5, found.sha256]
            _DISK_DIRTY = True


def save_digests() -> None:
    """Write the digests this process learnt to the machine's cache (entries of files gone are dropped)."""
    global _DISK_DIRTY
    from harness import paths
    from harness.safeio import write_atomic

    with _CACHE_LOCK:
        if not _DISK_DIRTY:
            return
        kept = {}
        for key, row in _disk().items():
            file = key.rsplit("|", 4)[0]
            try:
                st = os.stat(file)
            except OSError:
                continue
            if _disk_key((file, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)) == key:
                kept[key] = row
        write_atomic(paths.subdir("cache") / DISK_CACHE_NAME, json.dumps(kept))
        _DISK.clear()
        _DISK.update(kept)
        _DISK_DIRTY = False


# --------------------------------------------------------------------------------------------------
# Folders


def task_dir(env: Path, task: str) -> Path:
    return Path(env) / task


def partial_path(folder: Path, key: str) -> Path:
    """Where the partial download of record file `key` lives (keys may hold '/': flattened here)."""
    return folder / PARTIAL_DIR / (key.replace("/", "%2F") + PARTIAL_SUFFIX)


def make_dirs(path: Path) -> None:
    """mkdir -p with the shared folder mode (the umask cannot narrow it)."""
    path = Path(path)
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            pass
        os.chmod(folder, DIR_MODE)


def regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def files_under(folder: Path) -> list[str]:
    """Every entry under a task folder that is not a folder ('/'-separated, sorted), skipping X-ARES's
    derived folders; links and special files are listed too (verify reports them)."""
    out = []
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if d not in XARES_DERIVED]
        for d in list(dirs):
            if os.path.islink(os.path.join(root, d)):
                out.append((rel_root / d).as_posix())
                dirs.remove(d)
        out += [(rel_root / f).as_posix() for f in files]
    return sorted(out)


def write_marker(folder: Path) -> None:
    from harness.safeio import write_atomic

    write_atomic(Path(folder) / MARKER, b"", mode=FILE_MODE)


def remove_marker(folder: Path) -> bool:
    try:
        os.unlink(Path(folder) / MARKER)
        return True
    except FileNotFoundError:
        return False


def clear_partials(folder: Path) -> None:
    shutil.rmtree(Path(folder) / PARTIAL_DIR, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Unpacking a ZIP of the record into the task folder


@dataclasses.dataclass(frozen=True)
class Unpacked:
    """One file a ZIP of the record put into the task folder."""

    path: str
    archive: str
    size: int
    sha256: str


def unpack_zip(folder: Path, key: str, *, task: str) -> list[Unpacked]:
    """Unpack record file `key` (a ZIP) into the task folder with intake's checks.

    Every entry is checked from the central directory before anything is written (names, links,
    devices, encryption, overlaps, sizes, ratio), extracted by intake's own loop into a fresh folder
    inside `.aecc-download/` (counting the bytes actually written), then moved into place. An entry
    may not replace a record file or a file of another ZIP; one already there with the same bytes
    (a run interrupted after moving it) is accepted. Nothing is ever written outside the task folder.

    Raises:
        ArchiveRefused: the ZIP breaks a rule (naming the entry and the rule).
    """
    from harness.stages.rejection import IntakeRejected

    intake = _intake_rules()
    folder = Path(folder)
    archive = folder / key
    staging = folder / PARTIAL_DIR / (key.replace("/", "%2F") + ".unpack")
    shutil.rmtree(staging, ignore_errors=True)
    make_dirs(staging.parent)
    limits = data_limits()
    try:
        try:
            with intake.open_zip(archive) as zf:
                items, _ignored = intake.scan_zip(archive, zf, limits)
                names = [it.name for it in items if not it.is_dir]
                reserved = [n for n in names if n.split("/", 1)[0] in RESERVED]
                if reserved:
                    raise ArchiveRefused(f"task {task}: the record's archive {key} holds names the harness uses",
                                         expected="no entry named " + ", ".join(sorted(RESERVED)),
                                         found=", ".join(intake.escape_name(n) for n in reserved[:5]),
                                         fix="nothing was unpacked; report the record to the organizers")
                intake.extract_zip(zf, items, staging, limits)
        except IntakeRejected as exc:
            raise ArchiveRefused(f"task {task}: the record's archive {key} is refused by intake's archive rules",
                                 expected=exc.expected, found=exc.found,
                                 fix="nothing was unpacked into the task folder; report the record to the "
                                     "organizers (or fix the mirror)") from None
        out = []
        for name in sorted(names):
            source = staging / name
            target = folder / name
            check_parents(folder, name, task=task)
            found = digests(source)
            if os.path.lexists(target):
                if not regular_file(target) or digests(target).sha256 != found.sha256:
                    raise ArchiveRefused(f"task {task}: {key} would overwrite {name}",
                                         expected=f"{name} only once in the record (as a file or inside one ZIP)",
                                         found=f"{target} is already there with other bytes",
                                         fix="remove it if it is stale and run the fetch again; if it is a record "
                                             "file, report the record")
                source.unlink()
            else:
                make_dirs(target.parent)
                os.chmod(source, FILE_MODE)
                os.replace(source, target)
                remember(target, found)
            out.append(Unpacked(name, key, found.size, found.sha256))
        return out
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.parent.rmdir()  # only when empty: a partial download may be waiting there
        except OSError:
            pass


# --------------------------------------------------------------------------------------------------
# What to do where the harness cannot fetch


def expected_layout(env: Path | str, name: str, patterns: Iterable[str] = ()) -> str:
    """The layout a task's data must have, for a task the organizer places by hand."""
    folder = f"{Path(env) / name}/"
    shards = ", ".join(patterns) or "the shards its task module's audio_tar_name_of_split names"
    return (f"{folder} holding {shards} (X-ARES webdataset tars: <key>.json + <key>.<audio> per clip), then "
            f"an empty {folder}{MARKER}, written last")


__all__ = ["ArchiveRefused", "DIR_MODE", "Digests", "FILE_MODE", "MANIFEST_NAME", "MARKER", "PARTIAL_DIR",
           "PARTIAL_SUFFIX", "RESERVED", "Unpacked", "XARES_DERIVED", "XARES_LEFTOVERS", "check_names",
           "check_parents", "clear_partials", "data_limits", "digests", "expected_layout", "files_under",
           "is_unpacked", "make_dirs", "name_problems", "partial_path", "regular_file", "remember", "remove_marker",
           "save_digests", "task_dir", "unpack_zip", "write_marker"]
