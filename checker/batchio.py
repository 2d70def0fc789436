"""Tensors between stages as raw little-endian bytes plus a small JSON header: no pickle, no numpy.

The encode stage runs participant code; what it reads (audio batches) and writes (embeddings) must
be parseable without executing anything, by readers that bound every size. A header names the
dtype and shape; the payload is exactly `prod(shape) * itemsize` bytes. The submission image
needs only torch to read and write it.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

#: dtypes a stage may exchange, with their sizes; bfloat16 is absent on purpose: X-ARES stores
#: embeddings with numpy, which has no bfloat16, so an encoder returning it fails there too
DTYPES = {"float32": 4, "float16": 2, "float64": 8}
HEADER_CAP = 1024 * 1024


class BatchFormatError(ValueError):
    """A header or payload does not describe a well-formed tensor."""


def header_for(shape: list[int], dtype: str) -> dict:
    if dtype not in DTYPES:
        raise BatchFormatError(f"dtype {dtype!r} not one of {sorted(DTYPES)}")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise BatchFormatError(f"bad shape {shape!r}")
    return {"format": "aecc-tensor-1", "dtype": dtype, "shape": list(shape)}


def payload_size(header: dict) -> int:
    return math.prod(header["shape"]) * DTYPES[header["dtype"]]


def write_tensor(prefix: Path, tensor: Any, extra: dict | None = None) -> int:
    """Write `prefix.json` and `prefix.bin`; returns the payload size. The JSON goes last, atomically,
    so a reader that sees the header also sees a complete payload."""
    name = str(tensor.dtype).replace("torch.", "")
    tensor = tensor.detach().to("cpu").contiguous()
    header = header_for(list(tensor.shape), name)
    if extra:
        header.update(extra)
    # ctypes, not .numpy(): torch's own wheels do not pull numpy in, and submission images may lack it.
    data = ctypes.string_at(tensor.data_ptr(), tensor.numel() * tensor.element_size()) if tensor.numel() else b""
    if len(data) != payload_size(header):
        raise BatchFormatError("payload size does not match the header")
    Path(f"{prefix}.bin").write_bytes(data)
    tmp = Path(f"{prefix}.json.tmp")
    tmp.write_text(json.dumps(header))
    os.replace(tmp, f"{prefix}.json")
    return len(data)


def _open_plain(path: Path, linked_ok: bool = False):
    """Open without following a symbolic link, and refuse hard links: a stage's output dir may hold
    planted links to files it should not be able to name (labels, other outputs). `linked_ok` is for
    the harness's own prepared audio only, which the check's container sees through links made at
    its go (`harness.stages.encode.Layout`) and never through a folder it could write."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (info.st_nlink != 1 and not linked_ok):
        os.close(fd)
        raise BatchFormatError(f"{Path(path).name}: not a plain regular file (type or hard link)")
    return os.fdopen(fd, "rb")


def read_header(path: Path, cap: int = HEADER_CAP, *, linked_ok: bool = False) -> dict:
    with _open_plain(path, linked_ok) as fh:
        raw = fh.read(cap + 1)
    if len(raw) > cap:
        raise BatchFormatError(f"{path.name}: header larger than {cap} bytes")
    header = json.loads(raw)
    if header.get("format") != "aecc-tensor-1":
        raise BatchFormatError(f"{path.name}: not an aecc tensor header")
    header_for(header["shape"], header["dtype"])  # validates
    return header


def read_tensor(prefix: Path, max_bytes: int, *, linked_ok: bool = False) -> Any:
    """Read a tensor written by `write_tensor`, refusing payloads over `max_bytes` or of the wrong size
    (`linked_ok`: see `_open_plain`)."""
    import torch

    header = read_header(Path(f"{prefix}.json"), linked_ok=linked_ok)
    size = payload_size(header)
    if size > max_bytes:
        raise BatchFormatError(f"{Path(prefix).name}: {size} bytes exceeds the cap of {max_bytes}")
    with _open_plain(Path(f"{prefix}.bin"), linked_ok) as fh:
        data = fh.read(size + 1)
    if len(data) != size:
        raise BatchFormatError(f"{Path(prefix).name}: payload has {len(data)} bytes, header says {size}")
    dtype = getattr(torch, header["dtype"])
    if size == 0:
        return torch.zeros(header["shape"], dtype=dtype), header
    return torch.frombuffer(bytearray(data), dtype=dtype).reshape(header["shape"]), header
