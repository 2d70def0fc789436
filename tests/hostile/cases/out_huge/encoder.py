"""Writes junk into its output directory during encode (up to 3 GiB): the host's polling output
cap must kill it (output_limit) long before the disk fills."""
import glob

from aecc_hostile_base import BaseEncoder, in_encode_stage


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        if in_encode_stage() and not getattr(HostileEncoder, "_done", False):
            HostileEncoder._done = True
            chunk = b"\xff" * (8 << 20)
            with open(sorted(glob.glob("/out/*/"))[0] + "HOSTILE-junk.bin", "wb") as fh:
                for _ in range(3 * 128):
                    fh.write(chunk)
        return super().forward(audio)
