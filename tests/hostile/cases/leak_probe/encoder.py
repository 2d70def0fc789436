"""Run B of a pair: looks for what leak_plant (run A, another submission) left: files named
HOSTILE-LEAK-* anywhere it can read, and processes with that marker. It must find none."""
import os

from aecc_hostile_base import BaseEncoder, facts

SKIP = ("/proc", "/sys", "/usr", "/opt/venv/lib", "/opt/submission/venv/lib")


def _probe(where):
    found = []
    for root, dirs, names in os.walk("/"):
        if root.startswith(SKIP):
            dirs[:] = []
            continue
        found += [os.path.join(root, n) for n in names + dirs if n.startswith("HOSTILE-LEAK")]
    procs = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if b"HOSTILE-LEAK" in fh.read():
                        procs.append(pid)
            except OSError:
                pass
    facts("leak_probe_" + where, {"files": found, "procs": procs, "shm": sorted(os.listdir("/dev/shm")),
                                  "tmp": sorted(os.listdir("/tmp"))})


_probe("import")


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        if not getattr(HostileEncoder, "_done", False):
            HostileEncoder._done = True
            _probe("forward")
        return super().forward(audio)
