"""What the hostile suite shares: the cases on disk, the CLI driver, scaled-down profiles, the zoo
submission, a local package index, and the host-side checks every case ends with.

A *case* is `cases/<id>/` with its files and an `expected.json` (threat, defence, how it is driven,
the expected verdict and what the host must look like afterwards). Encoders build on
`cases/_base/aecc_hostile_base.py`, copied into every submission made from a case.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "tests" / "hostile" / "cases"
BASE = CASES / "_base" / "aecc_hostile_base.py"
AECC = str(Path(sys.executable).parent / "aecc")
PROFILES = REPO / "sandbox_profiles"
LABEL_CANARY = "AECC-HOSTILE-" + "LABEL-CANARY-5e2b"
KEY_CANARY = "AECC-HOSTILE-" + "KEY-CANARY-91c4"
ESCAPE = "HOSTILE-ESCAPE"
HOST_PORT = 47823

#: PIDs of every harness process the suite started (the test process itself included)
TRACKED_PIDS: set[int] = {os.getpid()}


def case(cid: str) -> dict:
    return json.loads((CASES / cid / "expected.json").read_text())


def all_cases() -> list[dict]:
    return [case(p.name) for p in sorted(CASES.iterdir()) if (p / "expected.json").is_file()]


def cases_by_drive(drive: str) -> list[str]:
    return [c["id"] for c in all_cases() if c["drive"] == drive]


# ------------------------------------------------------------------------------------- profiles

def write_profile(folder: Path, name: str, **changes) -> Path:
    """A copy of the cpu profile with `changes` (stage wall clocks as `wall_<stage>`), seccomp beside it."""
    data = json.loads((PROFILES / "cpu.json").read_text())
    data["name"] = name
    for key, value in changes.items():
        if key.startswith("wall_"):
            data["stages"][key[5:]]["wall_clock"] = value
        else:
            data[key] = value
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROFILES / "seccomp.json", folder / "seccomp.json")
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def make_profiles(folder: Path) -> dict[str, Path]:
    small = dict(memory="1536MiB", pids_limit=128, tmp_size="64MiB", shm_size="64MiB", log_cap="1MiB",
                 disk_cap="512MiB", wall_fetch="90s", wall_check="120s")
    return {
        "small": write_profile(folder, "small", **small),
        "tinywall": write_profile(folder, "tinywall", **{**small, "wall_check": "15s"}),
        "buildwall": write_profile(folder, "buildwall", **{**small, "wall_build": "25s"}),
        "score": write_profile(folder, "score", memory="4GiB", tmp_size="512MiB", shm_size="256MiB",
                               log_cap="1MiB", wall_fetch="90s", wall_encode="180s", wall_check="120s"),
    }


# ----------------------------------------------------------------------------------- submissions

def submission_from_case(cid: str, dest: Path) -> Path:
    """A folder submission: the case's files (or its `submission/`) plus the shared base module."""
    src = CASES / cid / "submission" if (CASES / cid / "submission").is_dir() else CASES / cid
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("expected.json", "index_package", "__pycache__"))
    shutil.copy(BASE, dest / BASE.name)
    return dest


def build_zoo(dest: Path, ids: list[str]) -> Path:
    """One submission holding many cases, `<id>.py` each, chosen with --encoder: one image for all."""
    dest.mkdir(parents=True)
    shutil.copy(BASE, dest / BASE.name)
    for cid in ids:
        shutil.copy(CASES / cid / "encoder.py", dest / f"{cid}.py")
    return dest


# --------------------------------------------------------------------------------------- the CLI

@dataclasses.dataclass
class Run:
    rc: int
    report: dict
    stdout: str
    stderr: str
    pid: int
    seconds: float
    peak_rss: int
    timed_out: bool


def aecc(args: list[str], tmp: Path, *, timeout: float = 900, env: dict | None = None) -> Run:
    """Run `aecc ARGS --json-out` as a subprocess, sampling its RSS; SIGTERM at `timeout`."""
    import psutil

    tmp.mkdir(parents=True, exist_ok=True)
    report_path = tmp / f"report-{time.monotonic_ns()}.json"
    out, err = tmp / "stdout.txt", tmp / "stderr.txt"
    extra = ["--json-out", str(report_path)] if args and args[0] == "validate" else []
    started = time.monotonic()
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen([AECC, *args, *extra], stdout=fo, stderr=fe, env={**os.environ, **(env or {})})
    TRACKED_PIDS.add(proc.pid)
    peak, timed_out = 0, False
    try:
        ps = psutil.Process(proc.pid)
    except psutil.Error:
        ps = None
    while proc.poll() is None:
        if ps is not None:
            try:
                peak = max(peak, ps.memory_info().rss)
            except psutil.Error:
                pass
        if time.monotonic() - started > timeout and not timed_out:
            timed_out = True
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
        time.sleep(0.05)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return Run(proc.returncode, report, out.read_text(errors="replace"), err.read_text(errors="replace"), proc.pid,
               time.monotonic() - started, peak, timed_out)


def by_id(report: dict) -> dict:
    return {c["id"]: c for c in report.get("checks", [])}


def facts(text: str, tag: str) -> list[dict]:
    """Every `HOSTILE-FACTS <tag> <json>` line a case printed into a log."""
    found = []
    for match in re.finditer(rf"HOSTILE-FACTS {re.escape(tag)} (\{{.*\}})", text):
        found.append(json.loads(match.group(1)))
    return found


def log_text(path: str | Path | None) -> str:
    if not path or not Path(path).is_file():
        return ""
    return Path(path).read_text(errors="replace")


def assert_verdict(run_or_report, expect: dict, rc: int | None = None) -> None:
    report = run_or_report
    if "exit_code" in expect and rc is not None:
        assert rc == expect["exit_code"], (rc, report.get("status"), _failed(report))
    assert report.get("status") == expect["status"], _failed(report)
    checks = by_id(report)
    if "failed_check" in expect:
        check = checks.get(expect["failed_check"])
        assert check is not None and check["status"] == "failed", _failed(report)
        if "message_contains" in expect:
            blob = json.dumps(check).lower()
            assert expect["message_contains"].lower() in blob, check
    if "warning" in expect:
        check = checks[expect["warning"]["check"]]
        assert check["status"] == "warning", check
        pitfalls = {f["pitfall"] for f in (check.get("details") or {}).get("findings", [])}
        assert expect["warning"]["pitfall"] in pitfalls, check


def _failed(report: dict) -> list:
    return [(c["id"], c["message"][:300], str(c.get("found", ""))[:300]) for c in report.get("checks", [])
            if c["status"] == "failed"]


# ------------------------------------------------------------------------------------ host checks

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plant_canaries(folder: Path, aecc_home: Path) -> dict[Path, str]:
    """Files the suite guards: a copy of /etc/passwd, a secret, and a fake signing key in AECC_HOME."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = aecc_home / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    files = {
        folder / "passwd": Path("/etc/passwd").read_bytes(),
        folder / "secret.txt": f"host secret {KEY_CANARY}\n".encode(),
        keys / "signing.key": f"-----BEGIN FAKE ED25519 KEY-----\n{KEY_CANARY}\n-----END-----\n".encode(),
    }
    for path, data in files.items():
        path.write_bytes(data)
        path.chmod(0o600)
    return {p: sha256(p) for p in files}


def escape_files(*roots: Path) -> list[str]:
    """Files named HOSTILE-ESCAPE* on the host: top levels of / and /tmp, and the given trees."""
    found = []
    for top in (Path("/"), Path("/tmp"), REPO):
        try:
            found += [str(p) for p in top.iterdir() if p.name.startswith(ESCAPE)]
        except OSError:
            pass
    for root in roots:
        for folder, dirs, names in os.walk(root):
            found += [os.path.join(folder, n) for n in names + dirs if n.startswith(ESCAPE)]
    return found


def marker_processes(marker: str = "HOSTILE-") -> list[str]:
    import psutil

    hits = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if marker in cmd and proc.pid != os.getpid() and "pytest" not in cmd:
            hits.append(f"{proc.pid}: {cmd[:200]}")
    return hits


def leftover_containers(client) -> list[str]:
    from harness.sandbox import engine

    left = []
    # One raw list call: `containers.list` inspects each container afterwards and races with removals.
    for row in client.api.containers(all=True, filters={"label": f"{engine.LABEL_MANAGED}=1"}):
        try:
            pid = int((row.get("Labels") or {}).get(engine.LABEL_OWNER_PID, "0"))
        except ValueError:
            continue
        if pid in TRACKED_PIDS:
            left.append(row["Names"][0].lstrip("/"))
    return left


def volume_names(client) -> set[str]:
    return {v.name for v in client.volumes.list()}


# --------------------------------------------------------------------------------- a local index

from tests.support.index import DOCKER0, LocalIndex  # noqa: E402,F401  (the suite uses hs.LocalIndex, hs.DOCKER0)


class Listener:
    """A TCP listener on the host that counts connections (a service a container must not reach)."""

    def __init__(self, port: int = HOST_PORT):
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()
