"""Searching for the signing key where it must never be: the tests' leak detector.

The private key lives on the host only (`harness.attest.keys`). The tests prove it: after a signed
run they search the results, the logs and `docker save` of every image for the key in every form it
could leak in (`find_secret`). Only tests search, so the search lives here, not in the harness.
"""

from __future__ import annotations

import base64
import gzip
import os
import stat
import tarfile
import zlib
from pathlib import Path
from typing import Any, Iterable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.errors import UsageError

#: how much is read at a time (a test makes it small, so that the key straddles reads)
SCAN_CHUNK = 1 << 20
#: how deep archives are opened: an image tar, its layer tars, their gzip, one more
MAX_DEPTH = 4


def _needles(private_key_pem: bytes) -> list[bytes]:
    """Every form the key could leak in: the PEM body (joined, and each long line), its DER, and the
    raw 32-byte private key as bytes, hex and base64 (a JWK's `d`)."""
    lines = [ln.strip() for ln in private_key_pem.splitlines()]
    body_lines = [ln for ln in lines if ln and not ln.startswith(b"-----")]
    needles = {b"".join(body_lines)} | {ln for ln in body_lines if len(ln) >= 40}
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        needles.add(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        if isinstance(key, Ed25519PrivateKey):
            raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
            needles |= {raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw).rstrip(b"="),
                        base64.urlsafe_b64encode(raw).rstrip(b"=")}
    except Exception:  # not parseable: the PEM body is still worth finding
        pass
    needles.discard(b"")
    if not needles:
        raise UsageError("no key material to search for", expected="a PEM private key",
                         found="no PEM body", fix="pass the content of signing.key")
    return sorted(needles, key=len)


class _Watch:
    """A read-only stream that looks for the needles in every byte passing through it, so that one
    pass both feeds an archive parser and searches the raw bytes (a layer is read once, never held)."""

    def __init__(self, stream: Any, needles: list[bytes]) -> None:
        self._stream = stream
        self._needles = needles
        self._overlap = max(len(n) for n in needles) - 1
        self._tail = b""
        self._pushback = b""
        self.found = False

    def _see(self, data: bytes) -> None:
        if not self.found and data:
            window = self._tail + data
            self.found = any(n in window for n in self._needles)
            self._tail = window[-self._overlap:] if self._overlap else b""

    def read(self, size: int | None = -1) -> bytes:
        if self._pushback:
            n = len(self._pushback) if size is None or size < 0 else min(size, len(self._pushback))
            data, self._pushback = self._pushback[:n], self._pushback[n:]
            return data
        data = self._stream.read(SCAN_CHUNK if size is None or size < 0 else size)
        self._see(data)
        return data

    def peek(self, size: int) -> bytes:
        head = b""
        while len(head) < size:
            data = self.read(size - len(head))
            if not data:
                break
            head += data
        self._pushback = head + self._pushback
        return head

    def drain(self) -> None:
        try:
            while self.read(SCAN_CHUNK):
                pass
        except (OSError, EOFError, zlib.error, tarfile.TarError):
            pass  # a cut or corrupt archive: what was read so far was searched


def _scan(stream: Any, label: str, needles: list[bytes], depth: int) -> list[str]:
    """Where in `stream` the key is: the innermost archive members holding it, else `label` itself."""
    watch = _Watch(stream, needles)
    head = watch.peek(512)
    inner: list[str] = []
    if depth < MAX_DEPTH:
        try:
            if head[:2] == b"\x1f\x8b":
                inner = _scan(gzip.GzipFile(fileobj=watch, mode="rb"), label, needles, depth + 1)
            elif len(head) >= 262 and head[257:262] == b"ustar":
                # Stream mode: members in order, nothing sought back, nothing held in memory.
                with tarfile.open(fileobj=watch, mode="r|") as archive:
                    for member in archive:
                        content = archive.extractfile(member) if member.isfile() else None
                        if content is not None:
                            inner += _scan(content, f"{label}!/{member.name}", needles, depth + 1)
        except (OSError, EOFError, zlib.error, tarfile.TarError):
            pass  # not the archive it looked like, or corrupt: the raw bytes are still searched
    watch.drain()
    return inner or ([label] if watch.found else [])


def find_secret(paths: Iterable[Path], private_key_pem: bytes) -> list[Path]:
    """Every file under `paths` that holds the private key, in any of its forms (`_needles`).

    Folders are walked without following links. Tar files (a `docker save` image, its layer tars) and
    gzip files (compressed layers) are opened, nested up to four deep, and a hit inside one is named
    `ARCHIVE!/MEMBER[!/MEMBER...]`, a path that names a member, not a file on disk. zstd-compressed
    layers are not opened (save images uncompressed to search them)."""
    needles = _needles(private_key_pem)
    hits: list[Path] = []
    for given in paths:
        given = Path(given)
        if given.is_dir() and not given.is_symlink():
            files: Iterable[Path] = (Path(d, f) for d, dirnames, names in sorted(os.walk(given)) for f in sorted(names))
        else:
            files = [given]
        for file in files:
            try:
                if not stat.S_ISREG(file.lstat().st_mode):
                    continue
                with open(file, "rb") as fh:
                    hits += [Path(h) for h in _scan(fh, str(file), needles, 0)]
            except OSError:
                continue
    return hits
