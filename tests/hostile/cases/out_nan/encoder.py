"""Returns NaN for the first clip of every batch: scoring must fail the task, not train on NaN."""
from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        out = super().forward(audio).clone()
        out[0] = float("nan")
        return out
