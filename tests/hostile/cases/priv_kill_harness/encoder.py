"""Hunts the harness: SIGKILLs its parents up the chain, then every PID up to pid_max except its
own. Only its container's processes exist for it; the harness on the host lives on and reports."""
import os
import signal

from aecc_hostile_base import BaseEncoder, facts


class HostileEncoder(BaseEncoder):
    def __init__(self):
        super().__init__()
        me = os.getpid()
        hit = []
        ppid = os.getppid()
        facts("kill_harness", {"pid": me, "ppid": ppid})
        for pid in range(2, 65536):
            if pid == me:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                hit.append(pid)
            except OSError:
                pass
        facts("kill_harness_hit", {"hit": hit})
        os.kill(ppid, signal.SIGKILL)
        os.kill(me, signal.SIGKILL)
