"""Ignores SIGTERM, starts detached children that ignore it too, and sleeps forever in forward:
only a SIGKILL of the whole container ends it, and no child outlives the container."""
import signal
import subprocess
import sys
import time

from aecc_hostile_base import BaseEncoder

CHILD = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(1)\n"


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for _ in range(3):
            subprocess.Popen([sys.executable, "-c", CHILD, "HOSTILE-MARKER-sigterm"], start_new_session=True)
        while True:
            time.sleep(1)
