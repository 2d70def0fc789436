"""Returns int64 embeddings (and bf16 would be the same) in the encode stage only (it passes the check
stage, where an integer output fails `output_dtype`): the encode stage refuses to store them."""
import torch

from aecc_hostile_base import BaseEncoder, in_encode_stage


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        out = super().forward(audio)
        return (out * 1000).to(torch.int64) if in_encode_stage() else out
