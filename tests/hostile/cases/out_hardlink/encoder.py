"""Tries to hard-link its outputs to files outside its output directory (the audio it was given,
its cache: other mounts, so EXDEV) and then hard-links each written header to a second name, so the
host finds output files with two links. The host reads output only as files with one link."""
import glob
import os

from aecc_hostile_base import BaseEncoder, errno_of, facts, in_encode_stage


def _outdir():
    return sorted(glob.glob("/out/*/"))[0]


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        if not in_encode_stage():
            return super().forward(audio)
        if not getattr(HostileEncoder, "_done", False):
            HostileEncoder._done = True
            audio_files = sorted(glob.glob("/audio/**/*.bin", recursive=True))[:1]
            facts("hardlink", {
                "to_audio": errno_of(os.link, audio_files[0], os.path.join(_outdir(), "HOSTILE-audio-link")) if audio_files else None,
                "to_passwd": errno_of(os.link, "/etc/passwd", os.path.join(_outdir(), "HOSTILE-passwd-link")),
            })
        for header in glob.glob("/out/**/[0-9]*.json", recursive=True):
            alias = header + ".alias"
            if not os.path.exists(alias):
                os.link(header, alias)
        return super().forward(audio)
