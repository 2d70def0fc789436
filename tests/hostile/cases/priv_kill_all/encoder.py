"""kill(-1, SIGKILL) while constructed: every process it may signal dies. In its own PID namespace
that is only the container; a process of the same uid (10001) on the host must survive."""
import os
import signal

from aecc_hostile_base import BaseEncoder, facts


class HostileEncoder(BaseEncoder):
    def __init__(self):
        super().__init__()
        facts("kill_all", {"visible_pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())})
        os.kill(-1, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
