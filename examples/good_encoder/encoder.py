"""The bundled example submission: a small, honest spectral encoder.

16 kHz mono in, one 128-dimensional frame every 10 ms out: log power spectrum of 25 ms windows
(torch.stft, centred, so a clip of T samples gives T // 160 + 1 frames), projected by a fixed
random matrix and squashed with tanh (bounded features train a probe well). No weights to download, deterministic, and it meets the whole contract, which makes
it the reference `make validate` and `make demo` run against.
"""

import torch
from torch import nn


class SpectralEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.sampling_rate = 16000
        self.hop_size_in_ms = 10
        self.output_dim = 128
        self.n_fft = 400
        self.hop = self.sampling_rate * self.hop_size_in_ms // 1000
        generator = torch.Generator().manual_seed(2025)
        projection = torch.randn(self.n_fft // 2 + 1, self.output_dim, generator=generator) / 15.0
        self.register_buffer("projection", projection)
        self.register_buffer("window", torch.hann_window(self.n_fft))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, self.n_fft, hop_length=self.hop, window=self.window, center=True,
                          return_complex=True)  # [B, F, T']
        power = spec.abs().pow(2).clamp_min(1e-10).log()
        return torch.tanh(power.transpose(1, 2) @ self.projection / 8.0)  # [B, T', D], bounded
