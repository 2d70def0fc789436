"""Reading what a container wrote, without trusting it; writing what the harness keeps, durably;
hashing files. The harness's one copy of each (`checker/` keeps its own: it never imports `harness`).

Container output lives in directories the container could write, so a "file" may be a symlink to
a host secret, a FIFO that blocks the reader forever, a device, a hard link, or simply huge
(Judge0's CVE-2024-28185 pattern). The host therefore opens it with O_NOFOLLOW|O_NONBLOCK, accepts
only a regular file with one link, and reads at most `cap` bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import IO, Any

from harness.errors import SubmissionError


class UnsafeOutput(SubmissionError):
    """A container's output file is not a plain, bounded regular file."""


def read_capped(path: Path, cap: int) -> bytes:
    """The bytes of a regular file written by a container, refusing links, FIFOs and oversize files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnsafeOutput(
            f"output file {path.name} could not be opened safely",
            expected="a regular file (not a symbolic link)",
            found=f"{exc.strerror}",
            fix="write plain files only",
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            kind = "hard link" if stat.S_ISREG(info.st_mode) else stat.filemode(info.st_mode)
            raise UnsafeOutput(
                f"output file {path.name} is not a plain file",
                expected="a regular file with one link",
                found=kind,
                fix="write plain files only",
            )
        if info.st_size > cap:
            raise UnsafeOutput(
                f"output file {path.name} is too large",
                expected=f"at most {cap} bytes",
                found=f"{info.st_size} bytes",
            )
        data = os.read(fd, cap + 1)
        if len(data) > cap:
            raise UnsafeOutput(f"output file {path.name} grew past its cap", expected=f"<= {cap} bytes")
        return data
    finally:
        os.close(fd)


def read_json(path: Path, cap: int) -> Any:
    """JSON from a container's output file (capped, no links); plain json, never pickle."""
    data = read_capped(path, cap)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsafeOutput(
            f"output file {path.name} is not valid JSON",
            expected="UTF-8 JSON",
            found=str(exc)[:200],
        ) from None


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None) -> Path:
    """Write `data` so that a reader (or a crash) sees the old file or the new one, never a part:
    a temporary file beside it, fsync'd, renamed into place, and the folder fsync'd.

    The temporary file has a name of its own (no two writers, threads or processes, share one), is
    created with `mode` from the start (a private file is never readable by others, not even before
    the rename; without `mode`: the umask's default) and is removed when the write fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o666 if mode is None else mode)
    try:
        with open(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)  # the umask can only narrow the mode; this makes it exact
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def fsync_dir(path: Path) -> None:
    """Make the entries of folder `path` durable (after a rename or link into it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: how much of a file is hashed at a time
HASH_CHUNK = 1 << 20


def sha256_file(source: str | os.PathLike[str] | IO[bytes]) -> str:
    """The sha256 (hex) of a file's bytes, read `HASH_CHUNK` at a time: a path (opened and closed
    here), or a binary file the caller opened (read from where it stands to its end, left open)."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            return sha256_file(fh)
    digest = hashlib.sha256()
    while chunk := source.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
