"""Sends SIGKILL to PID 1 (the container's init) while constructed: the kernel ignores it inside
the PID namespace, and nothing outside the container is affected."""
import os
import signal

from aecc_hostile_base import BaseEncoder, errno_of, facts


class HostileEncoder(BaseEncoder):
    def __init__(self):
        super().__init__()
        facts("kill_pid1", {"pid": os.getpid(), "ppid": os.getppid(),
                            "kill1": errno_of(os.kill, 1, signal.SIGKILL)})
