"""Tries every privilege trick an encoder could: setuid/setgid to root, mount, unshare, ptrace of
its parent, mknod of a device, chown, raw devices, kernel knobs. Each must fail with EPERM/EACCES/
EROFS; it then behaves, so the verdict is its honest one."""
import ctypes
import os
import stat

from aecc_hostile_base import BaseEncoder, errno_of, facts

libc = ctypes.CDLL(None, use_errno=True)


def _c(fn, *args):
    rc = fn(*args)
    return "ok" if rc == 0 else ctypes.get_errno()


def _status():
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
                out[key] = value.strip()
    return out


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        if not getattr(HostileEncoder, "_done", False):
            HostileEncoder._done = True
            libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
            libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
            facts("privilege", {
                "status": _status(),
                "setuid0": errno_of(os.setuid, 0),
                "setgid0": errno_of(os.setgid, 0),
                "mount_tmpfs": _c(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None),
                "unshare_user": _c(libc.unshare, 0x10000000),
                "unshare_mnt": _c(libc.unshare, 0x00020000),
                "ptrace_parent": _c(libc.ptrace, 16, os.getppid(), None, None),
                "mknod_char": errno_of(os.mknod, "/tmp/HOSTILE-dev", stat.S_IFCHR | 0o666, os.makedev(1, 3)),
                "chown_root": errno_of(lambda: (open("/tmp/HOSTILE-own", "w").close(), os.chown("/tmp/HOSTILE-own", 0, 0))[1]),
                "dev_mem": errno_of(lambda: open("/dev/mem", "rb").close()),
                "sysrq": errno_of(lambda: open("/proc/sysrq-trigger", "w").close()),
                "core_pattern": errno_of(lambda: open("/proc/sys/kernel/core_pattern", "w").close()),
                "setuid_bins": sorted(p for d in ("/usr/bin", "/bin", "/usr/sbin") if os.path.isdir(d)
                                      for p in (os.path.join(d, n) for n in os.listdir(d))
                                      if os.path.isfile(p) and os.stat(p).st_mode & stat.S_ISUID),
            })
        return super().forward(audio)
