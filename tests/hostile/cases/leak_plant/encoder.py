"""Run A of a pair: plants canaries in its cache, /tmp and /dev/shm and leaves a detached
background process behind, in every stage it runs in. Run B (leak_probe, another submission)
must see none of them, and no planted process may outlive A's containers on the host."""
import os
import subprocess
import sys

from aecc_hostile_base import BaseEncoder, errno_of, facts

CHILD = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(1)\n"


def _plant(where):
    out = {}
    for path in ("/cache/HOSTILE-LEAK-cache", "/tmp/HOSTILE-LEAK-tmp", "/dev/shm/HOSTILE-LEAK-shm",
                 os.path.expanduser("~/.cache/HOSTILE-LEAK-home")):
        out[path] = errno_of(lambda p=path: (os.makedirs(os.path.dirname(p), exist_ok=True),
                                             open(p, "w").write("leak"), None)[-1])
    subprocess.Popen([sys.executable, "-c", CHILD, "HOSTILE-LEAK-proc"], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    facts("leak_plant_" + where, out)


_plant("import")


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        if not getattr(HostileEncoder, "_done", False):
            HostileEncoder._done = True
            _plant("forward")
        return super().forward(audio)
