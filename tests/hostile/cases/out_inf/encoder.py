"""Returns +Inf in one frame of every batch: scoring must fail the task."""
from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        out = super().forward(audio).clone()
        out[-1, 0, 0] = float("inf")
        return out
