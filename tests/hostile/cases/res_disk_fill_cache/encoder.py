"""Writes 2 GiB of "downloads" into the cache while it is constructed with network on (fetch), four
times the small profile's 512 MiB disk_cap: a host-disk attack unless the cache is capped. Slow
enough (fsync per 16 MiB) that the cap's poll catches it mid-write on any disk."""
import os

from aecc_hostile_base import BaseEncoder, facts


class HostileEncoder(BaseEncoder):
    def __init__(self):
        super().__init__()
        cache = os.environ.get("XDG_CACHE_HOME", "/cache/xdg")
        written, err = 0, None
        try:
            os.makedirs(cache, exist_ok=True)
            with open(os.path.join(cache, "HOSTILE-fill.bin"), "wb") as fh:
                while written < 2 * 1024**3:
                    fh.write(b"\1" * (16 << 20))
                    fh.flush()
                    os.fsync(fh.fileno())
                    written += 16 << 20
        except OSError as exc:  # the check stage mounts the cache read-only
            err = exc.errno
        facts("disk_fill_cache", {"written": written, "errno": err})
