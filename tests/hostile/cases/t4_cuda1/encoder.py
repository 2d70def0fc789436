"""Hard-codes the second GPU when a GPU exists: fine on a CPU machine, broken on the one-GPU T4
runtime. The static scan must warn (device_index); the rest of the contract passes."""
import torch

from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    def forward(self, audio):
        if torch.cuda.is_available():
            audio = audio.to("cuda:1")
        return super().forward(audio)
