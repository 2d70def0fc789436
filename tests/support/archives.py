"""Hostile ZIP builders for the intake tests, written field by field so that any header can lie.

No binary fixtures are committed: every archive a test needs is built here, in memory, from a list of
`RawEntry`. Names may be `bytes` (to plant a NUL or invalid UTF-8 that `zipfile` would refuse to
write), sizes, CRCs, flags, modes and local-header offsets may all be set to whatever a test wants.
"""

from __future__ import annotations

import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

STORED = 0
DEFLATED = 8
UNIX = 3
FILE_MODE = stat.S_IFREG | 0o644
DIR_MODE = stat.S_IFDIR | 0o755


@dataclass(frozen=True)
class RawEntry:
    name: str | bytes
    data: bytes = b""
    method: int = DEFLATED
    flags: int = 0
    create_system: int = UNIX
    mode: int | None = None  # st_mode stored in external_attr >> 16; default: file or dir by name
    declared_size: int | None = None  # uncompressed size written in both headers (a lie if set)
    crc: int | None = None  # a wrong CRC if set
    header_offset: int | None = None  # where the central record says the local header is


def _compress(data: bytes, method: int) -> bytes:
    if method == DEFLATED:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush()
    return data  # stored, or an unsupported method id with stored bytes


def build_zip(entries: list[RawEntry]) -> bytes:
    out, central = bytearray(), bytearray()
    for e in entries:
        name = e.name.encode("utf-8") if isinstance(e.name, str) else e.name
        flags = e.flags | (0x800 if isinstance(e.name, str) and not e.name.isascii() else 0)
        comp = _compress(e.data, e.method)
        crc = zlib.crc32(e.data) if e.crc is None else e.crc
        size = len(e.data) if e.declared_size is None else e.declared_size
        mode = e.mode if e.mode is not None else (DIR_MODE if name.endswith(b"/") else FILE_MODE)
        offset = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, e.method, 0, 0x21,
                           crc, len(comp), size, len(name), 0) + name + comp
        central += struct.pack("<4sBBHHHHHIIIHHHHHII", b"PK\x01\x02", 20, e.create_system, 20, flags,
                               e.method, 0, 0x21, crc, len(comp), size, len(name), 0, 0, 0, 0,
                               (mode << 16) & 0xFFFFFFFF,
                               offset if e.header_offset is None else e.header_offset) + name
    start = len(out)
    out += central
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), start, 0)
    return bytes(out)


def zip_of(files: dict[str, bytes | str]) -> bytes:
    """An honest archive of regular files (names ending in '/' become directories)."""
    return build_zip([RawEntry(n, d.encode() if isinstance(d, str) else d) for n, d in files.items()])


def marked_zip(folder: Path, marker: str) -> bytes:
    """A ZIP of `folder`'s files, each `.py` with the comment `# marker` appended: the same encoder
    under another sha256 (a new submission to the harness, identical numbers to X-ARES)."""
    files: dict[str, bytes | str] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            data = path.read_bytes()
            files[path.name] = data + f"\n# {marker}\n".encode() if path.name.endswith(".py") else data
    return zip_of(files)


TEMPLATE_PY = '''\
import torch


class TemplateEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.sampling_rate = 16000
        self.output_dim = 128
        self.hop_size_in_ms = 40

    def forward(self, audio):
        return audio


if __name__ == "__main__":
    from xares.audio_encoder_checker import check_audio_encoder
    assert check_audio_encoder(TemplateEncoder())
'''

CHECKER_PY = '''\
class _DummyEncoder:  # the template's checker mentions encoders; it must never be chosen
    pass


def check_audio_encoder(encoder):
    return hasattr(encoder, "output_dim")
'''

TEMPLATE_FILES = {
    "template.py": TEMPLATE_PY,
    "audio_encoder_checker.py": CHECKER_PY,
    "requirements.txt": "loguru\ntorch==2.2.1\n",
}
