"""Searches everything it can reach, in every stage that imports it (fetch, check) and again once the
encode's audio is there (in the check's container after the go, or an encode container of its own),
for the labels and the harness's signing key (the tests plant canaries in both): the file system,
its environment, every /proc/<pid>/environ and cmdline, its mounts. It must find nothing."""
import os

from aecc_hostile_base import BaseEncoder, facts, in_encode_stage

# Split so that this file itself does not contain the needles.
NEEDLES = {"label": "AECC-HOSTILE-" + "LABEL-CANARY-5e2b", "key": "AECC-HOSTILE-" + "KEY-CANARY-91c4"}
SKIP = ("/proc", "/sys", "/dev", "/usr", "/opt/venv/lib", "/opt/submission/venv/lib")


def _search():
    hits, files = {k: [] for k in NEEDLES}, 0
    for root, dirs, names in os.walk("/"):
        if root.startswith(SKIP):
            dirs[:] = []
            continue
        for name in names:
            path = os.path.join(root, name)
            try:
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                with open(path, "rb") as fh:
                    data = fh.read(1 << 20)
            except OSError:
                continue
            files += 1
            for k, needle in NEEDLES.items():
                if needle.encode() in data:
                    hits[k].append(path)
    procs = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for part in ("environ", "cmdline"):
                try:
                    with open(f"/proc/{pid}/{part}", "rb") as fh:
                        procs.append(fh.read())
                except OSError:
                    pass
    blob = b"\0".join(procs) + "\0".join(f"{k}={v}" for k, v in os.environ.items()).encode()
    for k, needle in NEEDLES.items():
        if needle.encode() in blob:
            hits[k].append("proc-or-env")
    with open("/proc/self/mountinfo") as fh:
        mounts = sorted({line.split()[4] for line in fh})
    facts("snoop", {"hits": hits, "files_read": files, "mounts": mounts, "env": sorted(os.environ)})


_search()


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        if in_encode_stage() and not getattr(HostileEncoder, "_searched", False):
            HostileEncoder._searched = True
            _search()
        return super().forward(audio)
