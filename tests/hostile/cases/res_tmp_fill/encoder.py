"""Fills /tmp and /dev/shm, and tries to write to the read-only root, its own source and the cache
(network-less stages mount the cache read-only). Each ends in an errno inside; the host disk is
untouched. It then cleans up and behaves, so the verdict is its honest one."""
import os

from aecc_hostile_base import BaseEncoder, errno_of, facts


def _fill(path, cap=1 << 30):
    written = 0
    try:
        with open(path, "wb") as fh:
            while written < cap:
                fh.write(b"\0" * (1 << 20))
                fh.flush()
                written += 1 << 20
        err = None
    except OSError as exc:
        err = exc.errno
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    return {"written": written, "errno": err}


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        if not getattr(HostileEncoder, "_done", False):
            HostileEncoder._done = True
            facts("tmp_fill", {
                "tmp": _fill("/tmp/HOSTILE-fill"),
                "shm": _fill("/dev/shm/HOSTILE-fill"),
                "root": errno_of(lambda: open("/HOSTILE-ESCAPE-root", "w").close()),
                "usr": errno_of(lambda: open("/usr/HOSTILE-ESCAPE-usr", "w").close()),
                "src": errno_of(lambda: open(os.path.join(os.getcwd(), "HOSTILE-ESCAPE-src"), "w").close()),
                "cache": errno_of(lambda: open("/cache/HOSTILE-ESCAPE-cache", "w").close()),
            })
        return super().forward(audio)
