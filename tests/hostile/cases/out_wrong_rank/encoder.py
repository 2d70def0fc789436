"""Returns [B, D] (time pooled away) instead of [B, T', D] in the encode stage."""
from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        return super().forward(audio).mean(dim=1)
