"""In-tree PEP 517 backend: pip runs this module's hooks at install time, in the build sandbox."""
import base64
import hashlib
import json
import os
import sys
import zipfile

NAME = "aecc_hostile_install"
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
    """Install-time code: records who it runs as, tries to reach the host, reads what it can."""
    facts = {"status": _status(), "euid": os.geteuid(), "cwd": os.getcwd()}
    for path in ("/tmp/HOSTILE-ESCAPE-install", "/HOSTILE-ESCAPE-install", "/run/aecc-build-src/HOSTILE-ESCAPE-install"):
        try:
            open(path, "w").write("ran")
            facts[path] = "written"
        except OSError as exc:
            facts[path] = exc.errno
    secrets = {}
    for root, _dirs, names in os.walk("/run"):
        for name in names:
            try:
                with open(os.path.join(root, name), "rb") as fh:
                    secrets[os.path.join(root, name)] = b"HOSTILE-PIP-PASSWORD" in fh.read()
            except OSError as exc:
                secrets[os.path.join(root, name)] = exc.errno
    facts["password_seen"] = secrets
    facts["env_password"] = any("HOSTILE-PIP-PASSWORD" in v for v in os.environ.values())
    print("HOSTILE-FACTS install " + json.dumps(facts, sort_keys=True), flush=True)
    sys.stderr.write("HOSTILE-FACTS install " + json.dumps(facts, sort_keys=True) + "\n")
    raise RuntimeError("HOSTILE: install-time code ran and refuses to install")
