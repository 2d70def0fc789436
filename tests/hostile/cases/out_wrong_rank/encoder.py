"""Returns [B, D] (time pooled away) instead of [B, T', D] in the encode stage only: it passes the check
stage (where such an output is a blocking failure), so the encode agent must refuse the shape."""
from aecc_hostile_base import BaseEncoder, in_encode_stage


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        out = super().forward(audio)
        return out.mean(dim=1) if in_encode_stage() else out
