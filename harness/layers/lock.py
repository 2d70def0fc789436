"""Locks: the exact set of packages a layer's first build resolved, so every rebuild installs it again.

A layer that runs `pip install` resolves against the index of that day. Its first build writes
pip's installation report; the host turns it into a lock (each package's name, version and archive
sha256) and keeps it under `$AECC_HOME/pip-locks/`, keyed by the layer's image reference. A later build
of the same reference (the image was pruned, the machine is new, the index has newer uploads)
installs exactly the lock with `pip install --no-deps --require-hashes`, so the same ZIP gives the
same image on any day, and a changed wheel on the index fails the build instead of changing it.

The trusted runtime chain also has locks committed to the repository (`images/locks/`), so that a
fresh machine builds the runtime the suite was tested on. An image reference includes the root file
system's id, which differs per machine (debootstrap output is not bit-identical), so committed locks
are keyed by `Layer.lock_key`, which leaves the root out: a committed lock is used only while the
recipe, parameters and sources of its layer and of every layer below are what it was made from.

Lock text (a pip requirements file that `--require-hashes` accepts):

    # aecc-lock v1
    # layer: submission-0123456789ab
    # lock-key: <sha256>
    # resolved-at: 2026-11-29T01:00:00Z
    # resolve-before: 2025-04-30T23:59:59Z      (only when resolution was frozen)
    numpy==2.1.3 --hash=sha256:<hex>
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import re
from pathlib import Path

from harness import paths
from harness.errors import ImageBuildError

FORMAT = "aecc-lock v1"
_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s]+) --hash=sha256:(?P<sha>[0-9a-f]{64})$")
_HEADER = re.compile(r"^# (?P<key>[a-z-]+): (?P<value>.*)$")


@dataclasses.dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    sha256: str

    def line(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


@dataclasses.dataclass(frozen=True)
class Lock:
    """What one build of a layer installed with pip, exactly."""

    layer: str
    lock_key: str
    packages: tuple[LockedPackage, ...]
    resolved_at: str
    resolve_before: str | None = None

    def __post_init__(self) -> None:
        # One order for one set: a lock read back equals the lock written.
        object.__setattr__(self, "packages", tuple(sorted(self.packages, key=lambda p: p.name.lower())))
        names = [p.name.lower() for p in self.packages]
        if len(names) != len(set(names)):
            raise ValueError(f"lock of {self.layer} names a package twice")

    def text(self) -> str:
        header = [FORMAT, f"layer: {self.layer}", f"lock-key: {self.lock_key}", f"resolved-at: {self.resolved_at}"]
        if self.resolve_before:
            header.append(f"resolve-before: {self.resolve_before}")
        lines = ["# " + h for h in header]
        lines += [p.line() for p in self.packages]
        return "\n".join(lines) + "\n"

    @property
    def digest(self) -> str:
        """sha256 of the package lines only: two locks of the same set have one digest, whenever made."""
        body = "\n".join(p.line() for p in self.packages)
        return hashlib.sha256(body.encode()).hexdigest()

    def versions(self) -> dict[str, str]:
        return {p.name.lower(): p.version for p in self.packages}

    @classmethod
    def from_report(cls, report: dict, *, layer: str, lock_key: str,
                    resolve_before: str | None = None) -> "Lock":
        """A lock from pip's installation report (`pip install --report`, format version 1).

        Raises:
            ImageBuildError: an installed package has no archive hash (it did not come from an index).
        """
        packages = []
        for item in report.get("install", []):
            meta = item.get("metadata") or {}
            hashes = ((item.get("download_info") or {}).get("archive_info") or {}).get("hashes") or {}
            if "sha256" not in hashes:
                raise ImageBuildError(
                    f"layer {layer}: pip installed {meta.get('name')} {meta.get('version')} without an archive hash",
                    expected="every package from an index, with a sha256 in pip's report",
                    found=str(item.get("download_info"))[:300],
                    fix="install packages from an index only (requirement lines name a release, never a path or URL)")
            packages.append(LockedPackage(str(meta["name"]), str(meta["version"]), hashes["sha256"]))
        return cls(layer=layer, lock_key=lock_key, packages=tuple(packages),
                   resolved_at=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   resolve_before=resolve_before)

    @classmethod
    def parse(cls, text: str, *, origin: str = "lock") -> "Lock":
        """Raises ValueError naming the first line that is not part of a lock."""
        lines = text.splitlines()
        if not lines or lines[0] != f"# {FORMAT}":
            raise ValueError(f"{origin}: not an aecc lock (first line must be '# {FORMAT}')")
        header: dict[str, str] = {}
        packages = []
        for number, line in enumerate(lines[1:], 2):
            if not line.strip():
                continue
            match = _HEADER.match(line)
            if match:
                header[match["key"]] = match["value"]
                continue
            match = _LINE.match(line)
            if match is None:
                raise ValueError(f"{origin}: line {number} is not 'name==version --hash=sha256:<hex>': {line[:120]!r}")
            packages.append(LockedPackage(match["name"], match["version"], match["sha"]))
        missing = {"layer", "lock-key", "resolved-at"} - set(header)
        if missing:
            raise ValueError(f"{origin}: header lacks {', '.join(sorted(missing))}")
        return cls(layer=header["layer"], lock_key=header["lock-key"], packages=tuple(packages),
                   resolved_at=header["resolved-at"], resolve_before=header.get("resolve-before"))


def store_dir() -> Path:
    return paths.subdir("pip-locks")


def store_path(image_ref: str) -> Path:
    """`aecc/submission:0123-abcd` -> $AECC_HOME/pip-locks/aecc_submission_0123-abcd.lock"""
    return store_dir() / (re.sub(r"[^A-Za-z0-9._-]", "_", image_ref) + ".lock")


def load(path: Path) -> Lock | None:
    """The lock at `path`, or None when there is none.

    Raises:
        ImageBuildError: the file is there but is not a lock (it would otherwise be silently re-resolved).
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return Lock.parse(text, origin=str(path))
    except ValueError as exc:
        raise ImageBuildError("a lock file is damaged", expected="an aecc lock", found=str(exc),
                              fix=f"delete {path} to resolve the layer afresh (its image will differ)") from None


def save(path: Path, lock: Lock) -> None:
    from harness.safeio import write_atomic

    write_atomic(path, lock.text())
