"""Replaces the embedding payloads it already wrote with FIFOs (a reader that opens one blocks
forever) and one header with a FIFO: the host must neither hang nor accept them."""
import glob
import os
import stat

from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        for payload in glob.glob("/out/**/[0-9]*.bin", recursive=True):
            if stat.S_ISFIFO(os.lstat(payload).st_mode):
                continue
            os.unlink(payload)
            os.mkfifo(payload)
            header = payload[:-4] + ".json"
            os.unlink(header)
            os.mkfifo(header)
        return super().forward(audio)
