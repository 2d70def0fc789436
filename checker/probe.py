"""Report what an image provides, as one JSON object on stdout.

Used by image builds (a layer that cannot run this is broken) and by tests and `aecc doctor`
to see an image from the inside: Python, torch and its CUDA view, torchaudio, torchcodec with
FFmpeg, and xares. A missing package is reported as absent, not raised.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import platform
import sys


def _version(module: str) -> str | None:
    try:
        imported = importlib.import_module(module)
    except Exception as exc:  # any import failure means "not usable here"; say why
        return None if isinstance(exc, ModuleNotFoundError) else f"error: {type(exc).__name__}: {exc}"
    try:
        # The distribution's version: some packages (xares) define no __version__.
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return getattr(imported, "__version__", "unknown")


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _status_field(name: str) -> str | None:
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def sandbox() -> dict:
    """The envelope as seen from inside: who we are, what we may do, what we may use."""
    try:
        with open("/aecc-probe-write", "w"):
            pass
        os.unlink("/aecc-probe-write")
        root_writable = True
    except OSError:
        root_writable = False
    tmp = os.statvfs("/tmp")
    memory = _read("/sys/fs/cgroup/memory.max") or _read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    pids = _read("/sys/fs/cgroup/pids.max") or _read("/sys/fs/cgroup/pids/pids.max")
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "cap_eff": _status_field("CapEff"),
        "no_new_privs": _status_field("NoNewPrivs"),
        "seccomp": _status_field("Seccomp"),
        "network_interfaces": sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else [],
        "root_writable": root_writable,
        "tmp_bytes": tmp.f_blocks * tmp.f_frsize,
        "memory_limit": memory,
        "pids_limit": pids,
        "cpus_available": len(os.sched_getaffinity(0)),
        "env_keys": sorted(os.environ),
    }


def probe() -> dict:
    report: dict = {
        "schema_version": 1,
        "python": platform.python_version(),
        "sandbox": sandbox(),
        "packages": {m: _version(m) for m in ("torch", "torchaudio", "torchcodec", "xares", "numpy")},
    }
    if report["packages"]["torch"] and not str(report["packages"]["torch"]).startswith("error"):
        import torch

        cuda = {"available": torch.cuda.is_available(), "build": torch.version.cuda, "devices": []}
        if cuda["available"]:
            for i in range(torch.cuda.device_count()):
                major, minor = torch.cuda.get_device_capability(i)
                cuda["devices"].append({"name": torch.cuda.get_device_name(i), "capability": f"{major}.{minor}"})
        report["cuda"] = cuda
    if report["packages"]["torchcodec"] and not str(report["packages"]["torchcodec"]).startswith("error"):
        try:
            from torchcodec.decoders import AudioDecoder  # noqa: F401  (loads FFmpeg's libraries)

            report["ffmpeg"] = "ok"
        except Exception as exc:
            report["ffmpeg"] = f"error: {type(exc).__name__}: {exc}"
    return report


def main() -> int:
    json.dump(probe(), sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
