"""Replaces the embedding headers it already wrote with pickles whose loading would run a command
on the host, and leaves a .pkl and a pickled .npy beside them. The host parses headers as JSON only:
the task fails as unreadable output and the command never runs."""
import glob
import os
import pickle

from aecc_hostile_base import BaseEncoder


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/HOSTILE-ESCAPE-pickle",))


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        blob = pickle.dumps(_Boom())
        for header in glob.glob("/out/**/[0-9]*.json", recursive=True):
            with open(header, "wb") as fh:
                fh.write(blob)
            with open(os.path.join(os.path.dirname(header), "evil.pkl"), "wb") as fh:
                fh.write(blob)
            with open(header[:-5] + ".npy", "wb") as fh:
                fh.write(blob)
        return super().forward(audio)
