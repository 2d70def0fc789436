"""Computes in bfloat16 (emulated, slow or refused on a T4's sm_75) and returns float32."""
import torch

from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = super().forward(audio)
        return out.float()
