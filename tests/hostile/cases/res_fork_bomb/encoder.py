"""Forks until the kernel refuses (the pids cgroup), then reaps its children and behaves."""
import json
import os
import signal
import time

from aecc_hostile_base import BaseEncoder, facts


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        if not getattr(HostileEncoder, "_done", False):
            HostileEncoder._done = True
            children, err = [], None
            try:
                while len(children) < 100000:
                    pid = os.fork()
                    if pid == 0:
                        time.sleep(60)
                        os._exit(0)
                    children.append(pid)
            except OSError as exc:
                err = exc.errno
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            for pid in children:
                os.waitpid(pid, 0)
            facts("fork_bomb", {"forked": len(children), "errno": err})
        return super().forward(audio)
