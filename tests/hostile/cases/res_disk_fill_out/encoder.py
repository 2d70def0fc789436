"""Fills the one writable host directory of the check stage (/out, where the checker writes its
report) with 768 MiB: a host-disk attack unless that directory is capped."""
from aecc_hostile_base import BaseEncoder, facts


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        if not getattr(HostileEncoder, "_done", False):
            HostileEncoder._done = True
            written = 0
            try:
                with open("/out/HOSTILE-fill.bin", "wb") as fh:
                    while written < 768 * 1024 * 1024:
                        fh.write(b"\1" * (1 << 20))
                        written += 1 << 20
                err = None
            except OSError as exc:
                err = exc.errno
            facts("disk_fill", {"written": written, "errno": err})
        return super().forward(audio)
