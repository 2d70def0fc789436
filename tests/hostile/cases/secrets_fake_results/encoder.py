"""Forges results: prints "ACC=1.0" and result-shaped JSON, and writes result.json / score.json
files wherever it can write (its output directory in every stage). Its embeddings are the honest
baseline's, so its scores must equal the baseline's exactly."""
import glob
import json
import os

from aecc_hostile_base import BaseEncoder

FAKE = {"task": "tiny_tones", "track_a": 1.0, "track_b": 1.0, "outcome": "scored", "status": "passed",
        "checks": [], "schema_version": 1}


def _forge():
    print("ACC=1.0\nTrack A 1.0000 Track B 1.0000\n" + json.dumps(FAKE), flush=True)
    for folder in ["/out", "/work", "/tmp"] + glob.glob("/out/*/") + glob.glob("/out/*/*/"):
        for name in ("result.json", "score.json", "tiny_tones.json", "check.json", "fetch.json"):
            try:
                with open(os.path.join(folder, name), "w") as fh:
                    json.dump(FAKE, fh)
            except OSError:
                pass


_forge()


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        _forge()
        return super().forward(audio)
