"""The seccomp profile (sandbox_profiles/seccomp.json) and the optional gVisor runtime.

Each denied syscall is called raw (ctypes `syscall()`, no C compiler) in a container of the base
image run through `run_stage` under the real `cpu` profile, and must return exactly the errno the
profile configures; ordinary syscalls (fork, threads, sockets, personality queries) still work.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import EngineUnavailable
from harness.sandbox.profiles import load_profile
from harness.sandbox.run import run_stage
from harness.sandbox.spec import Outcome, RunSpec

pytestmark = pytest.mark.hostile

REPO = Path(__file__).resolve().parents[2]
AECC = str(Path(sys.executable).parent / "aecc")

EPERM, ENOSYS, EAFNOSUPPORT = 1, 38, 97

PROBE = r"""
import ctypes, json, os, socket, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {"keyctl": 250, "add_key": 248, "request_key": 249, "io_uring_setup": 425, "io_uring_enter": 426,
      "ptrace": 101, "mount": 165, "umount2": 166, "unshare": 272, "setns": 308, "clone": 56, "clone3": 435,
      "personality": 135, "socket": 41, "bpf": 321, "userfaultfd": 323, "perf_event_open": 298,
      "process_vm_readv": 310, "kexec_load": 246, "init_module": 175, "pivot_root": 155, "getpid": 39}

def sc(name, *args):
    libc.syscall.argtypes = [ctypes.c_long] * (1 + len(args))
    ctypes.set_errno(0)
    r = libc.syscall(NR[name], *args)
    if r == 0 and name == "clone":
        os._exit(0)  # a child of a clone that should not have happened: leave at once
    return {"ret": r, "errno": ctypes.get_errno() if r < 0 else 0}

buf = ctypes.create_string_buffer(256)
addr = ctypes.addressof(buf)
SIGCHLD = 17
out = {
  "keyctl": sc("keyctl", 0, -3, 0),
  "add_key": sc("add_key", 0, 0, 0, 0, 0),
  "request_key": sc("request_key", 0, 0, 0, 0),
  "io_uring_setup": sc("io_uring_setup", 1, addr),
  "io_uring_enter": sc("io_uring_enter", 0, 0, 0, 0, 0, 0),
  "ptrace_traceme": sc("ptrace", 0, 0, 0, 0),
  "mount": sc("mount", 0, 0, 0, 0, 0),
  "umount2": sc("umount2", 0, 0),
  "unshare_user": sc("unshare", 0x10000000),
  "unshare_net": sc("unshare", 0x40000000),
  "setns": sc("setns", 0, 0),
  "clone_newuser": sc("clone", 0x10000000 | SIGCHLD, 0, 0, 0, 0),
  "clone_newns": sc("clone", 0x00020000 | SIGCHLD, 0, 0, 0, 0),
  "clone_newpid": sc("clone", 0x20000000 | SIGCHLD, 0, 0, 0, 0),
  "clone_newnet": sc("clone", 0x40000000 | SIGCHLD, 0, 0, 0, 0),
  "clone3": sc("clone3", addr, 88),
  "vsock": sc("socket", 40, 1, 0),
  "personality_no_aslr": sc("personality", 0x0040000),
  "bpf": sc("bpf", 0, addr, 0),
  "userfaultfd": sc("userfaultfd", 0),
  "perf_event_open": sc("perf_event_open", addr, 0, -1, -1, 0),
  "process_vm_readv": sc("process_vm_readv", 1, 0, 0, 0, 0, 0),
  "kexec_load": sc("kexec_load", 0, 0, 0, 0),
  "init_module": sc("init_module", 0, 0, 0),
  "pivot_root": sc("pivot_root", 0, 0),
}
# What must keep working.
ok = {}
ok["getpid"] = sc("getpid")["ret"] > 0
pid = os.fork()
if pid == 0:
    os._exit(7)
ok["fork"] = os.waitpid(pid, 0)[1] >> 8 == 7
t = threading.Thread(target=lambda: None); t.start(); t.join()
ok["thread"] = True
for fam, typ in ((socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET6, socket.SOCK_DGRAM), (socket.AF_UNIX, socket.SOCK_STREAM)):
    s = socket.socket(fam, typ); s.close()
ok["sockets"] = True
a, b = socket.socketpair(); a.sendall(b"x"); ok["socketpair"] = b.recv(1) == b"x"
import mmap; m = mmap.mmap(-1, 1 << 20); m[0] = 1; ok["mmap"] = m[0] == 1
import subprocess; ok["subprocess"] = subprocess.run(["true"]).returncode == 0
print("SECCOMP " + json.dumps({"denied": out, "ok": ok}))
"""

EXPECTED = {
    "keyctl": EPERM, "add_key": EPERM, "request_key": EPERM, "io_uring_setup": EPERM, "io_uring_enter": EPERM,
    "ptrace_traceme": EPERM, "mount": EPERM, "umount2": EPERM, "unshare_user": EPERM, "unshare_net": EPERM,
    "setns": EPERM, "clone_newuser": EPERM, "clone_newns": EPERM, "clone_newpid": EPERM, "clone_newnet": EPERM,
    "clone3": ENOSYS, "vsock": EAFNOSUPPORT, "personality_no_aslr": EPERM, "bpf": EPERM, "userfaultfd": EPERM,
    "perf_event_open": EPERM, "process_vm_readv": EPERM, "kexec_load": EPERM, "init_module": EPERM,
    "pivot_root": EPERM,
}


@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers in the probe are x86_64's")
def test_seccomp_denies_what_an_encoder_never_needs(client, base_image, tmp_path):
    profile = load_profile("cpu")
    assert profile.seccomp_path() == REPO / "sandbox_profiles" / "seccomp.json"
    result = run_stage(client, profile, RunSpec(stage="check", image=base_image, command=("python", "-c", PROBE),
                                                wall_clock_s=120), tmp_path / "probe.log")
    log = result.log_path.read_text()
    assert result.outcome is Outcome.OK, log[-3000:]
    data = json.loads(log.split("SECCOMP ", 1)[1].splitlines()[0])
    got = {name: r["errno"] for name, r in data["denied"].items()}
    assert got == EXPECTED, {k: (got[k], EXPECTED[k]) for k in EXPECTED if got[k] != EXPECTED[k]}
    assert all(r["ret"] == -1 for r in data["denied"].values())
    assert all(data["ok"].values()), data["ok"]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers in the probe are x86_64's")
def test_seccomp_profile_is_what_makes_the_difference(client, base_image, tmp_path):
    """Control: with the engine's default seccomp profile instead, ptrace(TRACEME) succeeds (tried
    in a child), so its EPERM above is this profile's doing, not the dropped capabilities'. (Docker's
    default allow-list already refuses personality(ADDR_NO_RANDOMIZE); this profile keeps that.)"""
    profile = load_profile("cpu").replace(seccomp="docker-default")
    result = run_stage(client, profile, RunSpec(stage="check", image=base_image, command=("python", "-c", CONTROL),
                                                wall_clock_s=120), tmp_path / "probe.log")
    log = result.log_path.read_text()
    data = json.loads(log.split("CONTROL ", 1)[1].splitlines()[0])
    assert data["ptrace_traceme"] == 0 and data["personality_no_aslr"] == EPERM, data


CONTROL = r"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long] * 5
out = {}
for name, args in (("ptrace_traceme", (101, 0, 0, 0, 0)), ("personality_no_aslr", (135, 0x0040000, 0, 0, 0))):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ret = libc.syscall(*args)
        os.write(w, str(ctypes.get_errno() if ret < 0 else 0).encode())
        os._exit(0)
    os.close(w)
    out[name] = int(os.read(r, 16) or b"-1")
    os.waitpid(pid, 0)
print("CONTROL " + json.dumps(out, sort_keys=True))
"""


PERSONALITY_QUERY = r"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long, ctypes.c_ulong]
print("QUERY", libc.syscall(135, 0xffffffff), ctypes.get_errno())
"""


def test_seccomp_keeps_the_personality_query(client, base_image, tmp_path):
    result = run_stage(client, load_profile("cpu"), RunSpec(stage="check", image=base_image,
                       command=("python", "-c", PERSONALITY_QUERY), wall_clock_s=60), tmp_path / "q.log")
    line = result.log_path.read_text().split("QUERY ", 1)[1].split()
    assert int(line[0]) >= 0, f"personality(0xffffffff) failed with errno {line[1]}"


def _runsc_profile(tmp_path: Path) -> Path:
    data = json.loads((REPO / "sandbox_profiles" / "cpu.json").read_text())
    data.update(name="gvisor", runtime="runsc")
    shutil.copy(REPO / "sandbox_profiles" / "seccomp.json", tmp_path / "seccomp.json")
    path = tmp_path / "gvisor.json"
    path.write_text(json.dumps(data))
    return path


def test_runsc_profile_without_runsc_is_a_clear_engine_error(client, base_image, tmp_path):
    from harness.sandbox import engine

    if "runsc" in engine.engine_info(client).runtimes:
        pytest.skip("runsc is installed here: the missing-runtime message cannot be shown")
    profile = load_profile(_runsc_profile(tmp_path))
    assert profile.runtime == "runsc"
    with pytest.raises(EngineUnavailable) as err:
        run_stage(client, profile, RunSpec(stage="check", image=base_image, command=("true",)), tmp_path / "x.log")
    text = err.value.render() if hasattr(err.value, "render") else str(err.value)
    assert "runsc" in text and "runsc install" in text
    assert err.value.exit_code == 2  # infrastructure, never the submission's failure


def test_doctor_reports_the_missing_oci_runtime(client, tmp_path):
    from harness.sandbox import engine

    if "runsc" in engine.engine_info(client).runtimes:
        pytest.skip("runsc is installed here")
    proc = subprocess.run([AECC, "doctor", "--profile", str(_runsc_profile(tmp_path)), "--json"], capture_output=True,
                          text=True, timeout=300)
    report = json.loads(proc.stdout)
    check = {c["id"]: c for c in report["checks"]}["oci_runtime"]
    assert check["status"] == "fail" and "runsc" in check["required"]
    assert "runsc install" in check["fix"]
    assert proc.returncode == 2 and report["ok"] is False
