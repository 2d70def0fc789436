"""Lists, while constructed in the fetch stage (network on), every mount and environment variable
it can see: the fetch stage gets no data, labels, keys or results, only its cache and the agent."""
import os

from aecc_hostile_base import BaseEncoder, facts


class HostileEncoder(BaseEncoder):
    def __init__(self):
        super().__init__()
        mounts = []
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                mounts.append(line.split()[4])
        facts("fetch_mounts", {"mounts": sorted(set(mounts)), "env": sorted(os.environ)})
