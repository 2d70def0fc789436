"""A tiny deterministic convolutional audio encoder, in a fork of the X-ARES template's layout.

16 kHz mono in, one 128-dimensional frame every 40 ms out:

* a strided Conv1d front end (64 filters of 80 ms, hop 40 ms, 40 ms of zero padding on each
  side), so a clip of T samples gives `T // 640 + 1` frames;
* log-compressed magnitude of the filter outputs, a kernel-3 Conv1d to 128 channels, GELU;
* a per-frame LayerNorm (no statistics over the batch, so each clip is encoded on its own).

The weights are drawn from a fixed seed (nothing to download): this is a contract example, not a
good audio representation. Written for torch 2.2.1, the version the template pins.
"""

import torch
from loguru import logger
from torch import nn
from torch.nn import functional as F

SEED = 1234


class TinyConvEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.sampling_rate = 16000  # Hz, the rate X-ARES resamples every task to for this encoder
        self.hop_size_in_ms = 40  # time between output frames
        self.output_dim = 128  # D of [B, T', D]
        self.hop = self.sampling_rate * self.hop_size_in_ms // 1000  # 640 samples
        self.front = nn.Conv1d(1, 64, kernel_size=2 * self.hop, stride=self.hop, bias=False)
        self.mix = nn.Conv1d(64, self.output_dim, kernel_size=3, padding=1)
        self.norm = nn.LayerNorm(self.output_dim)
        generator = torch.Generator().manual_seed(SEED)
        with torch.no_grad():
            for conv in (self.front, self.mix):
                fan_in = conv.in_channels * conv.kernel_size[0]
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) / fan_in ** 0.5)
            self.mix.bias.zero_()
        self.eval()
        logger.info("TinyConvEncoder: {} Hz in, {}-d frames every {} ms", self.sampling_rate,
                    self.output_dim, self.hop_size_in_ms)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, T] waveform at 16 kHz -> [B, T // 640 + 1, 128] float32 frame embeddings."""
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        x = F.pad(audio.float().unsqueeze(1), (self.hop, self.hop))  # [B, 1, T + 2 * hop]
        x = torch.log1p(self.front(x).abs() * 100.0)  # [B, 64, T']
        x = F.gelu(self.mix(x))  # [B, 128, T']
        return self.norm(x.transpose(1, 2))  # [B, T', 128]


if __name__ == "__main__":
    encoder = TinyConvEncoder()
    waveform = torch.zeros(2, encoder.sampling_rate)
    print(tuple(encoder(waveform).shape))  # (2, 26, 128)
