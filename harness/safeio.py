"""Reading what a container wrote, without trusting it; writing what the harness keeps, durably.

Container output lives in directories the container could write, so a "file" may be a symlink to
a host secret, a FIFO that blocks the reader forever, a device, a hard link, or simply huge
(Judge0's CVE-2024-28185 pattern). The host therefore opens it with O_NOFOLLOW|O_NONBLOCK, accepts
only a regular file with one link, and reads at most `cap` bytes.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

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
    a temporary file beside it, fsync'd, renamed into place, and the folder fsync'd."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
